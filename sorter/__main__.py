"""`python -m sorter` runs the command-line interface."""

from sorter.cli import main

raise SystemExit(main())
