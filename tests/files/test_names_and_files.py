"""Folder-name validation and the collision resolver, including property tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sorter.files.fileops import discard, numbered_name, place, stage
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


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=8))
def test_placing_many_files_of_one_name_never_overwrites(tmp_path_factory, contents: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("place")
    dest = root / "dest"
    for i, blob in enumerate(contents):
        src = root / f"src{i}" / "photo.jpg"
        src.parent.mkdir()
        src.write_bytes(blob)
        place(src, dest)
        assert src.read_bytes() == blob, "copy leaves the original alone"
    stored = sorted(p.read_bytes() for p in dest.iterdir())
    assert stored == sorted(set(contents)), "each distinct content once, none lost"
    assert not [p for p in dest.iterdir() if p.name.startswith(".sorter-part-")]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=8))
def test_staged_copies_named_in_order_never_overwrite(tmp_path_factory, contents: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    """Copies staged all at once (as the sort's copier threads do), then named one by one."""
    root = tmp_path_factory.mktemp("stage")
    dest = root / "dest"
    sources = []
    for i, blob in enumerate(contents):
        src = root / f"src{i}" / "photo.jpg"
        src.parent.mkdir()
        src.write_bytes(blob)
        sources.append(src)
    staged = [stage(src, dest) for src in sources]
    assert len({s.temporary for s in staged}) == len(staged)
    outcomes = [place(src, dest, staged=s).outcome for src, s in zip(sources, staged, strict=True)]
    stored = sorted(p.read_bytes() for p in dest.iterdir())
    assert stored == sorted(set(contents))
    assert outcomes.count("copied") == len(set(contents))
    assert not [p for p in dest.iterdir() if p.name.startswith(".sorter-part-")]
    assert [s.read_bytes() for s in sources] == contents


def test_discarded_and_misdirected_stages_leave_nothing(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(b"jpeg")
    kept = stage(src, tmp_path / "a")
    discard(kept)
    wrong = stage(src, tmp_path / "a")
    with pytest.raises(ValueError, match="another folder"):
        place(src, tmp_path / "b", staged=wrong)
    assert list((tmp_path / "a").iterdir()) == []
    assert not (tmp_path / "b").exists()
