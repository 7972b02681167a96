"""How long a person waits: launch → window on screen → models ready → first photo sorted.

Starts the real app (``sorter.gui.app.build_window``) in a fresh process, offscreen, as a
double-click would, and drops the sample photos on it at once (the sort waits for the models).
Times are seconds from just before the process is spawned, so interpreter start-up and imports
count. Two launches: the first with an empty data folder (the ONNX export happens then), the
second reusing its cache, as every later launch does.

Run: ``python benchmarks/gui_startup.py [--photos DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, time
from pathlib import Path
spawned = float(os.environ["BENCH_SPAWNED"])
marks = {}
def mark(name):
    marks.setdefault(name, time.time() - spawned)
mark("interpreter up")
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from sorter.gui import messages
from sorter.gui.app import build_window
mark("imports done")
messages.set_non_blocking(True)
app = QApplication([sys.argv[0]])
window = build_window(app)
window.show()
QTimer.singleShot(0, lambda: mark("window shown"))
window.output_edit.setText(os.environ["BENCH_OUT"])

window.enqueue([Path(os.environ["BENCH_PHOTOS"])])  # dropped at once; it waits for the models
window.models_ready.connect(lambda: mark("models ready"))
window.results.model().rowsInserted.connect(lambda *a: mark("first photo sorted"))

def finished(summary):
    mark("folder done")
    marks["photos"] = summary.classified
    marks["backend"] = summary.backend
    QTimer.singleShot(0, app.quit)

window.run_finished.connect(finished)
QTimer.singleShot(300_000, app.quit)
app.exec()
print("BENCH " + json.dumps(marks))
"""

STAGES = ("interpreter up", "imports done", "window shown", "models ready", "first photo sorted", "folder done")


def launch(data: Path, photos: Path, out: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "SORTER_DATA_DIR": str(data),
        "SORTER_CONFIG_DIR": str(data / "config"),
        "BENCH_PHOTOS": str(photos),
        "BENCH_OUT": str(out),
        "BENCH_SPAWNED": repr(time.time()),
    }
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
    marks: dict[str, float] = json.loads(line.removeprefix("BENCH "))
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "assets" / "samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        first = launch(data, args.photos, Path(tmp) / "out1")
        again = launch(data, args.photos, Path(tmp) / "out2")
    print(f"{first['photos']:.0f} photos from {args.photos}, backend {first['backend']}, cores {os.cpu_count()}")
    print(f"{'seconds from launch':<24}{'first launch':>14}{'later launch':>14}")
    for stage in STAGES:
        print(f"{stage:<24}{first[stage]:>14.2f}{again[stage]:>14.2f}")


if __name__ == "__main__":
    main()
