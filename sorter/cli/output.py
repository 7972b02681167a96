"""What the CLI shows while and after it works: progress bars on stderr, JSON on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO


class Progress:
    """A one-line progress bar with rate and ETA on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._bar: Any = None

    def update(self, index: int, total: int, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="photo", file=self.stream, dynamic_ncols=True)
        self._bar.set_postfix_str(text[-40:], refresh=False)
        self._bar.update(index - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def print_json(data: dict[str, Any]) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def train_progress(enabled: bool) -> Callable[[Any], None]:
    """Progress for feature extraction and epochs, on stderr, from the train package's reports."""
    bars: dict[str, Any] = {}

    def report(p: Any) -> None:
        if not enabled:
            return
        if p.phase == "features":
            from tqdm import tqdm

            bar = bars.get("features") or bars.setdefault(
                "features", tqdm(total=p.total, desc="features", unit="batch", file=sys.stderr)
            )
            bar.update(p.step - bar.n)
            if p.step >= p.total:
                bar.close()
            return
        if p.note is not None:  # what the time budget tried, skipped or kept
            print(p.note, file=sys.stderr)
            return
        if p.step == 0:  # training begins: the epochs' lines follow
            return
        parts = [f"{p.phase} epoch {p.step}/{p.total}"]
        for name, value in (("train loss", p.train_loss), ("valid loss", p.valid_loss), ("metric", p.metric)):
            if value is not None:
                parts.append(f"{name} {value:.4f}")
        print("  ".join(parts), file=sys.stderr)

    return report
