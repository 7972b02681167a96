#!/usr/bin/env bash
# Build build.spec here (Linux) and smoke-test the frozen app:
#   * the frozen CLI sorts the sample photos exactly as the unfrozen one does;
#   * the frozen GUI starts, loads its models and closes cleanly offscreen (--self-check);
#   * prints the bundle size (with and without the CUDA libraries) and the frozen CLI's start time.
# Slow (minutes, gigabytes): under CI it runs only with SORTER_BUILD_SMOKE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CI:-}" = "true" ] && [ "${SORTER_BUILD_SMOKE:-0}" != "1" ]; then
  echo "build smoke skipped under CI (set SORTER_BUILD_SMOKE=1 to run it)"
  exit 0
fi
PY=${PYTHON:-.venv/bin/python}
"$PY" -m pip install -q "pyinstaller>=6.6"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m PyInstaller build.spec --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/build"
app=$(ls -d "$work"/dist/Sorter-*)

total=$(du -sm "$app" | cut -f1)
cuda=$(find "$app" \( -path '*nvidia*' -o -name 'libtorch_cuda*' -o -name 'libcudnn*' -o -name 'libnccl*' \
        -o -name 'libcublas*' -o -name 'libcusparse*' -o -name 'libcufft*' -o -name 'libcurand*' -o -name 'libcusolver*' \
        -o -path '*triton*' \) -type f -print0 | du -cm --files0-from=- | tail -1 | cut -f1)
echo "bundle: ${total} MB in all, $((total - cuda)) MB without the CUDA libraries (${cuda} MB)"

start=$EPOCHREALTIME
"$app/sorter" --version
echo "frozen CLI start (--version): $(awk "BEGIN {printf \"%.2f\", $EPOCHREALTIME - $start}") s"

"$app/sorter" sort assets/samples --out "$work/frozen" --device cpu --json > "$work/frozen.json"
"$PY" -m sorter sort assets/samples --out "$work/unfrozen" --device cpu --json > "$work/unfrozen.json"
listing() { (cd "$1" && find . -type f -not -path './.sorter/*' -print0 | sort -z | xargs -0 sha256sum); }
diff <(listing "$work/frozen") <(listing "$work/unfrozen")
grep -q '"backend": "onnx"' "$work/frozen.json" || { echo "the frozen CLI did not use ONNX Runtime" >&2; exit 1; }
echo "frozen and unfrozen CLI sorted the samples identically ($(listing "$work/frozen" | wc -l) files)"
# the face detector and its cascade made it into the bundle: the astronaut is a person
test -f "$work/frozen/People/astronaut.jpg" || { echo "the frozen CLI did not sort the astronaut into People" >&2; exit 1; }
echo "frozen CLI sorted the person photo into People"

QT_QPA_PLATFORM=offscreen SORTER_CONFIG_DIR="$work/config" SORTER_DATA_DIR="$work/data" \
  timeout 300 "$app/Sorter" --self-check
echo "frozen GUI self-check passed"
