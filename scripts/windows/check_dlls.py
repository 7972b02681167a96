"""Is every DLL that the Windows app's folder imports in the folder, or one that every Windows has?

Reads the import table of every ``.exe``, ``.dll`` and ``.pyd`` in the folder (pefile) and prints,
for each imported DLL found nowhere in the folder, which modules import it; DLLs that Windows 10
and 11 always have (the kernel, user and graphics libraries, the universal C runtime and its
``api-ms-win-*`` sets, ICU, the crypto and network libraries) are not reported. Exit status 1 when
anything is missing: the app would not start on a bare Windows.

usage: check_dlls.py FOLDER
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pefile

_SYSTEM_DLLS = """
    advapi32 authz avicap32 bcrypt bcryptprimitives cabinet cfgmgr32 combase comctl32 comdlg32 crypt32 cryptbase
    d2d1 d3d11 d3d12 imagehlp mscms pdh uiautomationcore wsock32
    d3d9 d3dcompiler_47 dbghelp dcomp dnsapi dwmapi dwrite dxgi dxva2 gdi32 gdiplus hid icu icuin icuuc imm32
    iphlpapi kernel32 kernelbase mf mfplat mfreadwrite mpr msimg32 msvcrt mswsock ncrypt netapi32 normaliz ntdll
    ole32 oleacc oleaut32 opengl32 powrprof propsys psapi rpcrt4 secur32 setupapi shcore shell32 shlwapi
    sspicli ucrtbase urlmon user32 userenv usp10 uxtheme version winhttp wininet winmm winspool.drv wintrust
    wldap32 ws2_32 wtsapi32 xinput1_4 dxcore api-ms-win-core-synch-l1-2-0 mscoree
"""
EVERY_WINDOWS = {name.lower() for name in _SYSTEM_DLLS.split()}


def known_everywhere(dll: str) -> bool:
    name = dll.lower().removesuffix(".dll")
    return name in EVERY_WINDOWS or name.startswith(("api-ms-win-", "ext-ms-win-"))


def imports(path: Path) -> list[str]:
    try:
        pe = pefile.PE(str(path), fast_load=True)
        pe.parse_data_directories(
            directories=[
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"],
            ]
        )
    except pefile.PEFormatError:
        return []
    entries = [*getattr(pe, "DIRECTORY_ENTRY_IMPORT", []), *getattr(pe, "DIRECTORY_ENTRY_DELAY_IMPORT", [])]
    return [e.dll.decode(errors="replace") for e in entries]


def main() -> int:
    folder = Path(sys.argv[1])
    binaries = [p for p in folder.rglob("*") if p.suffix.lower() in (".exe", ".dll", ".pyd") and p.is_file()]
    present = {p.name.lower() for p in binaries}
    missing: dict[str, set[str]] = defaultdict(set)
    for path in binaries:
        for dll in imports(path):
            if dll.lower() not in present and not known_everywhere(dll):
                missing[dll.lower()].add(str(path.relative_to(folder)))
    print(f"{len(binaries)} modules in {folder.name}; {len(present)} DLL names present")
    for dll, users in sorted(missing.items()):
        print(f"MISSING {dll}: imported by {', '.join(sorted(users)[:4])}{' …' if len(users) > 4 else ''}")
    if not missing:
        print("every imported DLL is in the folder or in every Windows")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
