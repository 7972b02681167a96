"""Frozen entry point of the console `sorter` command."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from sorter.cli import main

    raise SystemExit(main())
