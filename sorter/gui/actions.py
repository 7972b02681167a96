"""Actions declared once, with their text, shortcuts and tip, then made into ``QAction``s.

In the manner of Picard's action registry: a window lists what the user can do as data, and its
buttons and keys trigger those actions, instead of a ``keyPressEvent`` that re-decodes keys. A
plain-letter shortcut does not fire while the user types in a text field (the field claims the
key first), so ``C`` confirms in the grid and types a C in the category box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractButton, QWidget


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    shortcuts: tuple[str, ...] = ()
    tip: str = ""


class ActionRegistry:
    """The actions of one window; shortcuts work anywhere inside it."""

    def __init__(self, owner: QWidget) -> None:
        self.owner = owner
        self._actions: dict[str, QAction] = {}

    def add(self, spec: ActionSpec, handler: Callable[[], object]) -> QAction:
        if spec.name in self._actions:
            raise ValueError(f"action {spec.name!r} is declared twice")
        action = QAction(spec.text, self.owner)
        action.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut = f" ({', '.join(spec.shortcuts)})" if spec.shortcuts else ""
        action.setToolTip(spec.tip + shortcut if spec.tip else spec.text + shortcut)
        action.triggered.connect(lambda _checked=False: handler())
        self.owner.addAction(action)
        self._actions[spec.name] = action
        return action

    def bind(self, button: QAbstractButton, name: str) -> None:
        """The button triggers the action, and shows its tip and shortcut."""
        action = self._actions[name]
        button.setToolTip(action.toolTip())
        button.clicked.connect(action.trigger)

    def __getitem__(self, name: str) -> QAction:
        return self._actions[name]

    def __contains__(self, name: str) -> bool:
        return name in self._actions
