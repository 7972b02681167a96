"""Test harness for Wine 8 only: the .def of crtmath_shim.c, for the functions the given modules
import from api-ms-win-crt-math-l1-1-0.dll: its own complex functions, every other one forwarded
to Wine's ucrtbase.

usage: make_crtmath_def.py OUT.def MODULE.pyd [MODULE.pyd ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pefile

APISET = "api-ms-win-crt-math-l1-1-0.dll"


def imported(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        pe = pefile.PE(str(path), fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
        for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
            if entry.dll.decode().lower() == APISET:
                names |= {i.name.decode() for i in entry.imports if i.name}
    return names


def main() -> None:
    out, modules = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    source = (Path(__file__).parent / "crtmath_shim.c").read_text()
    own = set(re.findall(r"shim_(\w+)\(", source)) | {
        f"{m}{s}" for m in re.findall(r"DUAL\((\w+)\)", source) for s in ("", "f", "l")
    }
    lines = ["LIBRARY sorter-wine-crt-math-shim0.dll", "EXPORTS"]
    for name in sorted(imported(modules)):
        lines.append(f"    {name} = shim_{name}" if name in own else f"    {name} = ucrtbase.{name}")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
