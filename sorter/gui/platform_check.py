"""Before Qt starts on Linux: name the system libraries its X11 plugin needs, in one sentence.

Since Qt 6.5 the xcb platform plugin needs libxcb-cursor0 (and, on a bare system, a few more
xcb libraries). When one is missing Qt prints a paragraph and aborts the process, which a
newcomer cannot act on; this check says which Debian/Ubuntu packages to install instead.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping

XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0",
    "xcb-render-util": "libxcb-render-util0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}
"""Library (as ``find_library`` names it) → the Debian package that ships it."""


def missing_x11_packages(
    environ: Mapping[str, str] = os.environ,
    platform: str = sys.platform,
    find: Callable[[str], str | None] = ctypes.util.find_library,
) -> list[str]:
    """The packages to install before Qt can open a window through X11; empty when Qt will not
    use X11 here (another platform plugin is asked for, Wayland, not Linux) or nothing is missing."""
    if platform != "linux":
        return []
    wanted = environ.get("QT_QPA_PLATFORM", "")
    if wanted and not wanted.startswith("xcb"):
        return []
    if not wanted and environ.get("WAYLAND_DISPLAY"):
        return []
    return [package for library, package in XCB_LIBRARIES.items() if find(library) is None]


def x11_problem() -> str | None:
    """The one sentence to print, or None."""
    missing = missing_x11_packages()
    if not missing:
        return None
    return (
        "The desktop app cannot open a window: Qt needs these system libraries for X11, which are not "
        f"installed: {', '.join(missing)} (on Debian or Ubuntu: sudo apt-get install {' '.join(missing)}). "
        "The command line (sorter) works without them."
    )
