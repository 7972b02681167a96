"""Start the desktop app: window first, torch later, settings saved as they change."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QThreadPool, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from sorter import APP_NAME, paths
from sorter.gui import config, messages
from sorter.gui.main_window import MainWindow
from sorter.gui.platform_check import x11_problem

if TYPE_CHECKING:
    from sorter.jobs.events import SortSummary


def build_window(app: QApplication) -> MainWindow:
    qs = config.open_qsettings(paths.config_dir())
    settings = config.load(qs)
    pool = QThreadPool(app)
    pool.setMaxThreadCount(max(2, QThreadPool.globalInstance().maxThreadCount()))
    window = MainWindow(
        settings,
        pool,
        corrections_db=paths.corrections_db(),
        model_dirs=paths.model_search_dirs(),
        cache_dir=paths.cache_dir(),
        save_settings=lambda settings: config.save(qs, settings),  # as each choice changes
    )
    app.aboutToQuit.connect(lambda: config.save(qs, window.settings))
    return window


SELF_CHECK_SECONDS = 300
"""How long the self-check waits for the models (torch's first import under Wine takes a while)."""


def _self_check_done(app: QApplication, window: MainWindow, drop: Path | None) -> None:
    """The self-check passes when the window is up and a model is listed; it says which. With a
    folder to drop, it is dropped on the window as a person would, sorted with Start, and the
    check passes when every photo in it was sorted."""
    model = window.model_path()
    if model is None:
        print("sorter-gui: self-check failed: no model was found", file=sys.stderr, flush=True)
        app.exit(1)
        return
    print(f"sorter-gui: self-check: window shown, model {model.name} listed", file=sys.stderr, flush=True)
    if drop is None:
        _self_check_end(app, window, True)
        return

    def sorted_(summary: SortSummary) -> None:
        print(f"sorter-gui: self-check: {summary.sentence()}", file=sys.stderr, flush=True)
        _self_check_end(app, window, summary.failed == 0 and summary.classified == summary.total > 0)

    window.run_finished.connect(sorted_)
    window.drop_zone.folders_dropped.emit([drop])
    window.start()


def _self_check_end(app: QApplication, window: MainWindow, passed: bool) -> None:
    print(f"sorter-gui: self-check {'passed' if passed else 'failed'}", file=sys.stderr, flush=True)
    window.close()
    app.exit(0 if passed else 1)  # not only the last window closing: a platform may keep the loop alive


def _self_check_timeout(app: QApplication) -> None:
    print(
        f"sorter-gui: self-check failed: the models were not loaded within {SELF_CHECK_SECONDS} s",
        file=sys.stderr,
        flush=True,
    )
    app.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()
    parser = argparse.ArgumentParser(prog="sorter-gui")
    parser.add_argument("--no-err-windows", action="store_true", help="log errors instead of showing dialogs")
    parser.add_argument("--self-check", action="store_true", help="start, load the models, close (for builds)")
    parser.add_argument(
        "--drop", metavar="FOLDER", help="with --self-check: drop FOLDER on the window, press Start, wait (for builds)"
    )
    args, qt_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    problem = x11_problem()
    if problem is not None:
        print(f"sorter-gui: error: {problem}", file=sys.stderr)
        return 1
    messages.set_non_blocking(args.no_err_windows or args.self_check)
    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName(APP_NAME)
    icon = paths.assets_dir() / "sorter.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    messages.install_excepthook()
    window = build_window(app)
    window.show()
    if args.self_check:
        drop = Path(args.drop) if args.drop else None
        window.models_ready.connect(lambda: QTimer.singleShot(0, lambda: _self_check_done(app, window, drop)))
        QTimer.singleShot(SELF_CHECK_SECONDS * 1000, lambda: _self_check_timeout(app))
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
