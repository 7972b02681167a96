"""Test harness for Wine 8 only: point modules' imports of one DLL at another of the same name length.

Run on a test copy (the Wine prefix's Python, or a copy of the frozen folder made to run under
Wine), never on what is shipped: numpy's modules import complex functions Wine 8 lacks from
api-ms-win-crt-math-l1-1-0.dll, and scripts/windows/crtmath_shim.c provides them.

usage: patch_imports.py OLD.dll NEW.dll FILE [FILE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    old, new = sys.argv[1].encode(), sys.argv[2].encode()
    if len(old) != len(new):
        raise SystemExit("the two DLL names must be of the same length")
    for name in sys.argv[3:]:
        path = Path(name)
        data = path.read_bytes()
        patched = data.replace(old + b"\0", new + b"\0")
        if patched == data:
            patched = data.replace(old.upper() + b"\0", new + b"\0")
        if patched != data:
            path.write_bytes(patched)
            print(f"patched {path.name}")


if __name__ == "__main__":
    main()
