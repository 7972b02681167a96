"""Frozen entry point of the windowed app."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from sorter.gui.app import main

    raise SystemExit(main())
