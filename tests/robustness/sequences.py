"""Random sequences of what a user does, on real photos with the real model (issue 29).

A :class:`hypothesis.stateful.RuleBasedStateMachine` whose rules are the user's actions (sort,
copy or move, into a new output or the same one, a folder of an output re-sorted into it, two
outputs at once; resort; correct, to a known, a new or a differently cased label; confirm; undo
last correction; undo; a kill -9 of a sorting child process at a chosen file operation, then
resume) and whose invariants are what must never break, checked after every step:

* every original photo's bytes exist somewhere (its source or an output);
* each journal agrees with the disk: every photo it places is there with its content, no file in
  a category folder is unrecorded, its history replays to its placements, no intent is left
  over and no temporary file either;
* the corrections store agrees with the disk: every review that stands is of a photo that lies
  where the review put it;
* undoing every run (on a copy of the whole state) restores every source byte for byte and
  leaves no photo and no category folder in the outputs.

The model stays loaded in this process and the photos are small, so a step costs milliseconds;
only the crash needs a child process, kept warm (model loaded) one ahead. ``tests/robustness/
test_sequences.py`` runs a short profile in CI and a long one under ``-m slow``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sorter.errors import SorterError
from sorter.files.corrections import CorrectionStore, confirm, correct, undo_correction
from sorter.files.journal import STATE_DIR, Journal, is_output_folder
from sorter.files.undo import undo_last_run
from sorter.fsutil import TEMP_PREFIX
from sorter.jobs.events import drive
from sorter.jobs.resort import resort
from sorter.jobs.reviews import reviews_for_sorting
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.classifier import Classifier
from sorter.names import HOLDING_FOLDERS
from sorter.usertypes import OpKind, PlacementStatus
from tests.conftest import REPO

OUTPUTS = ("O1", "O2")
THRESHOLDS = (None, 0.0, 0.6, 0.99)
CRASH_CALLS = ("link", "unlink", "fsync", "mkdir")


@dataclass
class Tally:
    """What the sequences did, for the long profile's report."""

    sequences: int = 0
    steps: int = 0
    kills: int = 0
    sequences_with_kill: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    lost: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "sequences": self.sequences,
            "steps": self.steps,
            "kills": self.kills,
            "sequences_with_kill": self.sequences_with_kill,
            "lost_photos": self.lost,
            "rules": dict(sorted(self.rules.items())),
        }


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` but Sorter's state folder."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and STATE_DIR not in p.relative_to(folder).parts)


_FORK_SERVER = r"""
import json, os, signal, sys, traceback
from pathlib import Path
# everything a sort needs is imported once, here; no network has run yet, so no thread pool
# exists to be broken by fork(), and each child loads the model and sorts on its own
from sorter.jobs.events import drive
from sorter.jobs.reviews import reviews_for_sorting
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.classifier import Classifier
import sorter.learn.shift, sorter.model.scoring, sorter.model.architecture, sorter.model.people  # noqa
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            calls = {"n": 0}
            def crashing(real):
                def wrapped(*args, **kwargs):
                    result = real(*args, **kwargs)
                    calls["n"] += 1
                    if calls["n"] >= job["at"]:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return result
                return wrapped
            classifier = Classifier.load(sys.argv[1], "cpu", backend="torch", batch_size=4)
            output = Path(job["output"])
            reviewed, kept = reviews_for_sorting(Path(job["db"]), Path(sys.argv[1]), output)
            options = SortOptions(Path(job["source"]), output, move=job["move"], reviewed=reviewed, kept=kept)
            setattr(os, job["call"], crashing(getattr(os, job["call"])))
            drive(sort_folder(options, classifier), lambda e: None)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    print(json.dumps({"killed": killed, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}), flush=True)
"""


class WarmChildren:
    """Sorting child processes forked from one server that has imported everything once: a
    crash costs a fork and a sort of a few photos, not a start of Python and torch."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self._server: subprocess.Popen[str] | None = None

    def crash(self, job: dict[str, Any]) -> bool:
        """Run a sort in a child that kills itself with SIGKILL after its ``job["at"]``-th call of
        ``os.<job["call"]>``; returns whether the kill landed (else the sort finished)."""
        if self._server is None:
            self._server = subprocess.Popen(
                [sys.executable, "-c", _FORK_SERVER, str(self.model)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._server.stdout is not None
            assert self._server.stdout.readline().strip() == "ready"
        assert self._server.stdin is not None and self._server.stdout is not None
        self._server.stdin.write(json.dumps(job) + "\n")
        self._server.stdin.flush()
        answer = json.loads(self._server.stdout.readline())
        assert answer["killed"] or answer["code"] == 0, f"the child sort failed: {answer}"
        return bool(answer["killed"])

    def close(self) -> None:
        if self._server is not None:
            for stream in (self._server.stdin, self._server.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self._server.wait(timeout=60)
            self._server = None


class Sequences(RuleBasedStateMachine):
    """See the module docstring. Class attributes are set by the test before running it."""

    classifier: Classifier
    photos: list[Path]
    children: WarmChildren
    tally: Tally
    crash_share: float = 0.1

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="sorter-seq-"))
        self.source = self.root / "photos"
        (self.source / "album").mkdir(parents=True)
        for i, photo in enumerate(self.photos):
            folder = self.source / "album" if i % 3 == 2 else self.source
            shutil.copy2(photo, folder / photo.name)
        self.originals = {str(p.relative_to(self.source)): sha(p) for p in photo_files(self.source)}
        self.db = self.root / "data" / "corrections.sqlite"
        self.crashes_allowed = False
        self.crashes = 0
        self.killed = False
        self.tally.sequences += 1

    # -- set-up ------------------------------------------------------------------------------------
    @initialize(
        luck=st.randoms(use_true_random=False),
        move=st.booleans(),
        threshold=st.sampled_from(THRESHOLDS),
        call=st.sampled_from(CRASH_CALLS),
        at=st.integers(1, 8),
    )
    def first_sort(self, luck: random.Random, move: bool, threshold: float | None, call: str, at: int) -> None:
        """Every sequence starts from a sorted folder; in some the first sort is killed (kill -9)
        at a file operation and resumed, and a later sort may crash too."""
        self.crashes_allowed = luck.random() < self.crash_share
        output = self.output(OUTPUTS[0])
        if self.crashes_allowed:
            self._crash(self.source, output, move, call, at)
            threshold = None  # the resumed sort is the one that crashed
        options = self._options(self.source, output, move=move, threshold=threshold)
        drive(sort_folder(options, self.classifier), lambda e: None)
        self._note("sort")

    def _options(
        self, source: Path, output: Path, *, move: bool, threshold: float | None = None, other: bool = False
    ) -> SortOptions:
        """A sort's options as the CLI and the GUI make them, with the user's reviews."""
        reviewed, kept = reviews_for_sorting(self.db, Path(self.classifier.bundle.path), output)
        return SortOptions(
            source, output, move=move, threshold=threshold, other_folder=other, reviewed=reviewed, kept=kept
        )

    def has_output(self) -> bool:
        return any(is_output_folder(self.output(name)) for name in OUTPUTS)

    def teardown(self) -> None:
        if self.killed:
            self.tally.sequences_with_kill += 1
        shutil.rmtree(self.root, ignore_errors=True)

    def output(self, name: str) -> Path:
        return (self.root / name).resolve()

    def _note(self, rule: str) -> None:
        self.tally.steps += 1
        self.tally.rules[rule] += 1

    # -- what a user does --------------------------------------------------------------------------
    def _folders_to_sort(self) -> list[tuple[Path, str | None]]:
        """The photo folder, its sub-folder, and every folder of an output (with that output)."""
        found: list[tuple[Path, str | None]] = [(self.source, None), (self.source / "album", None)]
        for name in OUTPUTS:
            out = self.output(name)
            if out.is_dir():
                found += [(p, name) for p in sorted(out.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        return found

    @rule(
        pick=st.integers(0, 50),
        into=st.sampled_from(OUTPUTS),
        move=st.booleans(),
        threshold=st.sampled_from(THRESHOLDS),
        other=st.booleans(),
        own=st.booleans(),
    )
    def sort(self, pick: int, into: str, move: bool, threshold: float | None, other: bool, own: bool) -> None:
        """Sort a folder: the photos, or a folder of an output (mostly into its own output)."""
        folders = self._folders_to_sort()
        source, holder = folders[pick % len(folders)]
        output = self.output(holder if holder is not None and own else into)
        self._note("sort-inside" if holder is not None else "sort")
        options = self._options(source, output, move=move, threshold=threshold, other=other)
        # a refusal in one sentence (a folder of one output moved into another) changes nothing
        with contextlib.suppress(SorterError):
            drive(sort_folder(options, self.classifier), lambda e: None)

    @precondition(lambda self: self.has_output())
    @rule(into=st.sampled_from(OUTPUTS), threshold=st.sampled_from(THRESHOLDS))
    def resort(self, into: str, threshold: float | None) -> None:
        out = self.output(into)
        if not is_output_folder(out):
            return
        self._note("resort")
        bundle = self.classifier.bundle
        with Journal.open(out, create=False, lock=False) as journal:
            from sorter.jobs.rescore import sorted_with

            choices = sorted_with(journal).overridden(threshold=threshold)
        with CorrectionStore(self.db) as store, contextlib.suppress(SorterError):
            resort(out, bundle, store, choices.policy(bundle.config))

    def _placed(self, into: str) -> list[Path]:
        out = self.output(into)
        if not is_output_folder(out):
            return []
        with Journal.open(out, create=False, lock=False) as journal:
            return [p.path for p in journal.placements()]

    @precondition(lambda self: self.has_output())
    @rule(into=st.sampled_from(OUTPUTS), pick=st.integers(0, 50), label=st.integers(0, 50), case=st.booleans())
    def correct(self, into: str, pick: int, label: int, case: bool) -> None:
        """Correct a photo: to a category of the model, a new one, or one spelled in another case."""
        placed = self._placed(into)
        if not placed:
            return
        self._note("correct")
        labels = [*self.classifier.classes, "doggo"]
        chosen = labels[label % len(labels)]
        if case:
            chosen = chosen.swapcase()
        # refused: already in that folder, or a name that cannot be a category
        with CorrectionStore(self.db) as store, contextlib.suppress(SorterError):
            correct(self.output(into), placed[pick % len(placed)], chosen, store, self.classifier.classes)

    @precondition(lambda self: self.has_output())
    @rule(into=st.sampled_from(OUTPUTS), pick=st.integers(0, 50))
    def confirm(self, into: str, pick: int) -> None:
        placed = [p for p in self._placed(into) if p.parent.name not in HOLDING_FOLDERS]
        if not placed:
            return
        self._note("confirm")
        with CorrectionStore(self.db) as store:
            confirm(self.output(into), placed[pick % len(placed)], store)

    @precondition(lambda self: self.has_output())
    @rule(into=st.sampled_from(OUTPUTS))
    def undo_correction(self, into: str) -> None:
        if not is_output_folder(self.output(into)):
            return
        self._note("undo-correction")
        with CorrectionStore(self.db) as store, contextlib.suppress(SorterError):  # none in this folder
            undo_correction(self.output(into), store)

    @precondition(lambda self: self.has_output())
    @rule(into=st.sampled_from(OUTPUTS))
    def undo(self, into: str) -> None:
        if not is_output_folder(self.output(into)):
            return
        self._note("undo")
        with CorrectionStore(self.db) as store, contextlib.suppress(SorterError):  # nothing left to undo
            undo_last_run(self.output(into), store)

    @precondition(lambda self: self.crashes_allowed and self.crashes < 2)
    @rule(
        pick=st.integers(0, 50),
        into=st.sampled_from(OUTPUTS),
        move=st.booleans(),
        call=st.sampled_from(CRASH_CALLS),
        at=st.integers(1, 8),
        own=st.booleans(),
    )
    def crash_then_resume(self, pick: int, into: str, move: bool, call: str, at: int, own: bool) -> None:
        """kill -9 of a sorting child process right after one of its file operations, then the
        same sort again in this process (resume)."""
        folders = self._folders_to_sort()
        source, holder = folders[pick % len(folders)]
        output = self.output(holder if holder is not None and own else into)
        if move and holder is not None and output != self.output(holder):
            return  # refused before anything is written: no crash to be had
        self._crash(source, output, move, call, at)
        if source.is_dir():
            drive(sort_folder(self._options(source, output, move=move), self.classifier), lambda e: None)

    def _crash(self, source: Path, output: Path, move: bool, call: str, at: int) -> None:
        self._note("crash")
        self.crashes += 1
        job = {"source": str(source), "output": str(output), "move": move, "db": str(self.db)}
        if self.children.crash({**job, "call": call, "at": at}):
            self.tally.kills += 1
            self.killed = True

    # -- what must never break ---------------------------------------------------------------------
    @invariant()
    def no_photo_is_lost(self) -> None:
        everywhere: Counter[str] = Counter()
        for folder in (self.source, *(self.output(n) for n in OUTPUTS)):
            everywhere.update(sha(p) for p in photo_files(folder))
        lost = [name for name, digest in self.originals.items() if everywhere[digest] == 0]
        if lost:
            self.tally.lost += len(lost)
        assert not lost, f"photos lost: {lost}"

    @invariant()
    def journals_agree_with_the_disk(self) -> None:
        for name in OUTPUTS:
            out = self.output(name)
            if not is_output_folder(out):
                continue
            with Journal.open(out, create=False, lock=False) as journal:
                placements = journal.placements(everything=True)
                ops = journal.ops()
                intents = journal.intents()
            assert intents == [], f"{name}: file operations left half done: {intents}"
            placed = {p.path: p for p in placements if p.status == PlacementStatus.PLACED}
            for path, p in placed.items():
                assert path.is_file(), f"{name}: {path} is recorded but not there"
                assert sha(path) == p.sha256, f"{name}: {path} is not the photo recorded there"
                assert path.parent.name == p.label, f"{name}: {path} is recorded as {p.label}"
            for path in photo_files(out):
                assert not path.name.startswith(TEMP_PREFIX), f"{name}: a temporary file was left: {path}"
                assert path in placed, f"{name}: {path} lies in the output but is recorded nowhere"
            assert _replayed(ops) == {p.id: (p.path, p.label, p.status) for p in placements}, f"{name}: history"

    @invariant()
    def the_store_agrees_with_the_disk(self) -> None:
        """The last standing word on each photo (an older one it overrules comes back only if the
        newer is taken back, and then the photo goes back too) says where the photo lies."""
        if not self.db.exists():
            return
        with CorrectionStore(self.db) as store:
            standing = [c for name in OUTPUTS for c in store.standing_in(self.output(name))]
        assert {c.output for c in standing} <= {self.output(name) for name in OUTPUTS}
        for c in standing:
            assert c.output is not None and c.placement_id is not None
            with Journal.open(c.output, create=False, lock=False) as journal:
                p = journal.placement(c.placement_id)
            assert p is not None and p.status == PlacementStatus.PLACED, f"{c.sorted_path}: review of a photo undone"
            assert p.path == c.sorted_path, f"the review of {c.sorted_path} points elsewhere than {p.path}"
            assert p.label == c.corrected and c.sorted_path.is_file()

    @invariant()
    def undoing_everything_restores_the_sources(self) -> None:
        backup = Path(tempfile.mkdtemp(prefix="sorter-seq-backup-")) / "state"
        shutil.copytree(self.root, backup, symlinks=True)
        try:
            with CorrectionStore(self.db) as store:
                for name in OUTPUTS:
                    out = self.output(name)
                    while is_output_folder(out):
                        try:
                            report = undo_last_run(out, store)
                        except SorterError as exc:
                            assert "no run to undo" in str(exc), str(exc)
                            break
                        assert not report.kept, f"undo kept {report.kept}"
                assert store.all() == [], "every review belongs to a run that was undone"
            now = {str(p.relative_to(self.source)): sha(p) for p in photo_files(self.source)}
            assert now == self.originals, "undoing every run gives back the photos as they were"
            for name in OUTPUTS:
                out = self.output(name)
                assert photo_files(out) == [], f"{name}: photos left after undoing every run"
                left = [p.name for p in out.iterdir() if p.name != STATE_DIR] if out.exists() else []
                assert left == [], f"{name}: folders left after undoing every run: {left}"
        finally:
            shutil.rmtree(self.root)
            shutil.copytree(backup, self.root, symlinks=True)
            shutil.rmtree(backup.parent)


def _replayed(ops: list[Any]) -> dict[int, tuple[Path, str, str]]:
    """Each placement's path, label and status from its history alone."""
    state: dict[int, tuple[Path, str, str]] = {}
    for op in ops:
        path, label, status = state.get(op.placement_id, (op.to_path, op.label, PlacementStatus.PLACED))
        kind = OpKind(op.kind)
        if kind == OpKind.PLACE:
            path, label, status = op.to_path, op.label, PlacementStatus.PLACED
        elif kind in (OpKind.MOVE, OpKind.CORRECT, OpKind.UNCORRECT, OpKind.REVERT):
            path, label = op.to_path, op.label
        elif kind == OpKind.REMOVE:
            status = PlacementStatus.UNDONE
        elif kind == OpKind.RETURN:
            status = PlacementStatus.UNDONE
            path = op.to_path or path
        elif kind == OpKind.KEEP:
            status = PlacementStatus.KEPT
        state[op.placement_id] = (path, label, str(status))
    return state


def write_tally(tally: Tally, path: Path) -> None:
    path.write_text(json.dumps(tally.to_json(), indent=2) + "\n")
    os.sync()
