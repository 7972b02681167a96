"""Which strings may become folder names on every desktop system Sorter ships to.

Class names from a model bundle and labels typed by a user both end up as folder names, so a
hostile or careless name (``../../evil``, ``CON``, ``a/b``) must be refused before any path is built.
"""

from __future__ import annotations

from collections.abc import Iterable

_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    # 0-9 and the superscript digits ¹ ² ³, which Windows also reads as device numbers
    *(f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"),
}
_FORBIDDEN_CHARS = set('<>:"/\\|?*')
MAX_NAME_LENGTH = 100


def folder_name_problem(name: object) -> str | None:
    """Return why ``name`` cannot be a folder name, or None when it can."""
    if not isinstance(name, str):
        return "it is not text"
    if not name or not name.strip():
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if name in (".", "..") or ".." in name.split("/") or ".." in name.split("\\"):
        return "it refers to a parent folder"
    bad = sorted({c for c in name if c in _FORBIDDEN_CHARS})
    if bad:
        return f"it contains {' '.join(repr(c) for c in bad)}"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains control characters"
    if name[-1] in ". " or name[0] == " ":
        return "it starts with a space or ends with a dot or space"
    if name.split(".")[0].upper().rstrip(" ") in _WINDOWS_RESERVED:
        return "it is a name Windows reserves for devices"
    if name.startswith("."):
        return "it would be a hidden folder"
    return None


def class_names_problem(names: Iterable[object]) -> str | None:
    """Check a whole label set: each name valid, and no two equal ignoring case."""
    seen: dict[str, str] = {}
    for name in names:
        problem = folder_name_problem(name)
        if problem is not None:
            return f"the class name {name!r} is not a safe folder name ({problem})"
        assert isinstance(name, str)
        key = name.casefold()
        if key in seen:
            return f"the class names {seen[key]!r} and {name!r} differ only in case"
        seen[key] = name
    return None


UNSURE_FOLDER = "_unsure"
"""Where images below the confidence threshold go; no class may take this name."""
OTHER_FOLDER = "_other"
"""Where photos that fit none of the categories go when the user keeps them apart from _unsure."""
HOLDING_FOLDERS = (UNSURE_FOLDER, OTHER_FOLDER)
"""The folders that hold photos back from every category: a photo there is not sorted, cannot be
confirmed where it is, and no category may take their names."""


def is_category(name: str) -> bool:
    """Whether a folder of a sorted folder is a category (not ``_unsure``, ``_other`` or hidden):
    a sorted folder can then be read back as labelled photos, to train a model from it."""
    return not name.startswith(".") and name.casefold() not in HOLDING_FOLDERS
