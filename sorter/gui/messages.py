"""One place that shows a failure to the user: one plain sentence, or a log line under test.

``set_non_blocking(True)`` (tests, ``--no-err-windows``) makes every dialog log instead of block.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtWidgets import QMessageBox, QWidget

from sorter.errors import SorterError, describe_os_error

log = logging.getLogger(__name__)
_NON_BLOCKING = False
shown: list[str] = []
"""Every message shown or logged, newest last (tests read it)."""


def set_non_blocking(value: bool) -> None:
    global _NON_BLOCKING
    _NON_BLOCKING = value


def user_message(error: BaseException) -> str:
    if isinstance(error, SorterError):
        return str(error)
    if isinstance(error, OSError):
        return describe_os_error(error)
    return f"Something went wrong: {type(error).__name__}: {error}"


def show_error(parent: QWidget | None, error: BaseException | str, title: str = "Sorter") -> None:
    text = error if isinstance(error, str) else user_message(error)
    shown.append(text)
    if _NON_BLOCKING:
        log.info("error dialog: %s", text)
        return
    QMessageBox.warning(parent, title, text)


def show_info(parent: QWidget | None, text: str, title: str = "Sorter") -> None:
    shown.append(text)
    if _NON_BLOCKING:
        log.info("info dialog: %s", text)
        return
    QMessageBox.information(parent, title, text)


ANSWER = True
"""What :func:`ask` answers while dialogs do not block (tests set it)."""


def ask(parent: QWidget | None, question: str, *, yes: str = "OK", no: str = "Cancel", title: str = "Sorter") -> bool:
    """Ask before an action that takes something away; True when the user chose ``yes``."""
    shown.append(question)
    if _NON_BLOCKING:
        log.info("question: %s (answered %s)", question, ANSWER)
        return ANSWER
    box = QMessageBox(QMessageBox.Icon.Question, title, question, parent=parent)
    accept = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(no, QMessageBox.ButtonRole.RejectRole)
    box.exec()
    return box.clickedButton() is accept


def install_excepthook() -> None:
    """An unexpected exception shows a crash dialog instead of the window vanishing."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        log.error("unhandled exception:\n%s", text)
        show_error(None, f"Sorter hit an unexpected error and may need restarting.\n\n{value}", "Sorter crashed")

    sys.excepthook = hook
