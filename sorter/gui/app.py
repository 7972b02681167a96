"""Start the desktop app: window first, torch later, settings saved as they change."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Sequence

from PySide6.QtCore import QThreadPool, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from sorter import APP_NAME, paths
from sorter.gui import config, messages
from sorter.gui.main_window import MainWindow
from sorter.gui.platform_check import x11_problem


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


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()
    parser = argparse.ArgumentParser(prog="sorter-gui")
    parser.add_argument("--no-err-windows", action="store_true", help="log errors instead of showing dialogs")
    parser.add_argument("--self-check", action="store_true", help="start, load the models, close (for builds)")
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
        window.models_ready.connect(lambda: QTimer.singleShot(0, window.close))
        QTimer.singleShot(120_000, lambda: app.exit(1))
    return int(app.exec())


if __name__ == "__main__":
    raise SystemExit(main())
