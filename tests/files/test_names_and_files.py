"""Folder-name validation and the collision resolver, including property tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.files.fileops import discard, numbered_name, stage
from sorter.files.journal import Journal
from sorter.files.ledger import SourceMark, copy_in
from sorter.names import class_names_problem, folder_name_problem


def test_examples_of_unsafe_names() -> None:
    for name in [
        "",
        " ",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "CON",
        "con.txt",
        "LPT1",
        "x.",
        "x ",
        "a:b",
        "tab\there",
        ".hidden",
        "x" * 101,
    ]:
        assert folder_name_problem(name) is not None, name
    for name in ["chair", "Food & drink", "Ünïcödé 猫", "sofa (big)", "_unsure-not", "CONSOLE"]:
        assert folder_name_problem(name) is None, name
    assert "case" in (class_names_problem(["Chair", "chair"]) or "")


@given(st.text(min_size=1, max_size=60))
def test_accepted_names_stay_inside_their_parent(name: str) -> None:
    if folder_name_problem(name) is None:
        parent = Path("/safe/root")
        joined = Path(os.path.normpath(parent / name))
        assert joined.parent == parent
        assert "/" not in name and "\\" not in name and name not in (".", "..")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30), st.integers(1, 500))
def test_numbered_names_are_distinct_and_keep_the_suffix(name: str, n: int) -> None:
    numbered = numbered_name(name, n)
    assert numbered != name
    assert f"({n})" in numbered
    if "." in name.strip(".") and not name.startswith("."):
        assert numbered.rsplit(".", 1)[1] == name.rsplit(".", 1)[1]


def _sources(root: Path, contents: list[bytes]) -> list[Path]:
    sources = []
    for i, blob in enumerate(contents):
        src = root / f"src{i}" / "photo.jpg"
        src.parent.mkdir()
        src.write_bytes(blob)
        sources.append(src)
    return sources


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=8))
def test_staged_copies_named_in_order_never_overwrite(tmp_path_factory, contents: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    """Copies staged all at once (as the sort's copier threads do), then named and recorded one by
    one: every photo gets a copy of its own, even one whose content another already has."""
    root = tmp_path_factory.mktemp("stage")
    out = root / "out"
    dest = out / "photos"
    sources = _sources(root, contents)
    staged = [stage(src, dest) for src in sources]
    assert len({s.temporary for s in staged}) == len(staged)
    with Journal.open(out) as journal:
        run = journal.start_run(root, "copy", "model", "cpu")
        landed = [
            copy_in(journal, run, src, dest, "photos", 0.9, s, SourceMark(len(b), 1))
            for src, s, b in zip(sources, staged, contents, strict=True)
        ]
        placed = {p.path: p.source for p in journal.placements()}
    assert [pl.outcome for pl in landed] == ["copied"] * len(contents)
    assert sorted(p.read_bytes() for p in dest.iterdir()) == sorted(contents), "each photo once, none lost"
    assert {pl.path: src for pl, src in zip(landed, sources, strict=True)} == placed
    assert all(pl.path.read_bytes() == src.read_bytes() for pl, src in zip(landed, sources, strict=True))
    assert not [p for p in dest.iterdir() if p.name.startswith(".sorter-part-")]
    assert [s.read_bytes() for s in sources] == contents, "copy leaves the originals alone"


def test_discarded_and_misdirected_stages_leave_nothing(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(b"jpeg")
    kept = stage(src, tmp_path / "a")
    discard(kept)
    wrong = stage(src, tmp_path / "a")
    with Journal.open(tmp_path / "out") as journal, pytest.raises(ValueError, match="another folder"):
        copy_in(journal, 1, src, tmp_path / "b", "b", 0.9, wrong, None)
    assert list((tmp_path / "a").iterdir()) == []
    assert not (tmp_path / "b").exists()
