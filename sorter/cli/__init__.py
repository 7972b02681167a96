"""``sorter``: sort, undo, review, train and inspect models from a terminal, with no Qt.

Exit status (:class:`sorter.usertypes.ExitCode`): 0 all done; 3 done but some photos failed (each
listed with its reason); 2 usage error; 1 fatal error; 130 cancelled with Ctrl+C (run the same
command to resume). The parser is :mod:`sorter.cli.parser`, the commands :mod:`sorter.cli.commands`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from sorter.usertypes import ExitCode


def _speak_utf8() -> None:
    """Print UTF-8 whatever the locale: on Windows a pipe gets the ANSI code page (cp1252), in
    which a photo named in Japanese or with an emoji cannot be written, and ``--json`` would
    stop with UnicodeEncodeError after the photos were sorted."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").replace("-", "").lower()
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    from sorter.cli.parser import build_parser
    from sorter.errors import SorterError

    _speak_utf8()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except SorterError as exc:
        print(f"sorter: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Cancelled.", file=sys.stderr)
        return ExitCode.CANCELLED


if __name__ == "__main__":
    raise SystemExit(main())
