"""A newcomer on a bare Linux desktop is told which packages Qt's X11 plugin needs, not a Qt abort."""

from __future__ import annotations

import os
import subprocess
import sys

from sorter.gui.platform_check import XCB_LIBRARIES, missing_x11_packages
from tests.conftest import REPO


def test_missing_xcb_libraries_are_named_as_packages() -> None:
    present = {"xcb-icccm", "xcb-keysyms", "xcb-image", "xcb-render-util", "xkbcommon-x11"}

    def find(name: str) -> str | None:
        return f"lib{name}.so" if name in present else None

    assert missing_x11_packages({"DISPLAY": ":0"}, "linux", find) == ["libxcb-cursor0"]
    assert missing_x11_packages({"DISPLAY": ":0"}, "linux", lambda n: "x") == []
    assert missing_x11_packages({"QT_QPA_PLATFORM": "offscreen"}, "linux", find) == []
    assert missing_x11_packages({"WAYLAND_DISPLAY": "wayland-0"}, "linux", find) == []
    assert missing_x11_packages({}, "win32", find) == []
    assert len(missing_x11_packages({"QT_QPA_PLATFORM": "xcb"}, "linux", lambda n: None)) == len(XCB_LIBRARIES)


def test_the_app_says_one_sentence_and_exits_when_they_are_missing() -> None:
    code = (
        "import ctypes.util, sys\n"
        "ctypes.util.find_library = lambda name: None if name == 'xcb-cursor' else 'lib.so'\n"
        "from sorter.gui.app import main\n"
        "sys.exit(main([]))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"}
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "libxcb-cursor0" in lines[0] and "apt-get install" in lines[0]
