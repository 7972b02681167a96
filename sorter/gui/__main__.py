"""`python -m sorter.gui` starts the desktop app."""

from sorter.gui.app import main

raise SystemExit(main())
