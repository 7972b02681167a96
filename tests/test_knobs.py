"""The decision's constants are one documented object, and a benchmark's override ends with its block."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from itertools import pairwise

import numpy as np
import pytest

import sorter.knobs
from sorter.jobs.policy import Policy
from sorter.knobs import DEFAULT, Knobs, knobs, overridden
from sorter.learn.shift import FolderShift


def test_every_knob_says_why_it_has_its_value() -> None:
    tree = ast.parse(inspect.getsource(sorter.knobs))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Knobs").body
    documented = {
        node.target.id
        for node, after in pairwise(body)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
        and len(after.value.value) > 20
    }
    assert {f.name for f in fields(Knobs)} == documented
    assert len(documented) >= 30


def test_an_override_changes_the_decision_only_inside_its_block() -> None:
    policy = Policy(("a", "b"), np.array([0.5, 0.5], dtype=np.float32), False, target=0.95)
    folder = FolderShift(photos=40, atypical=6)  # 15 %: above twice the expected 5 %, under 3 sigma
    assert not folder.shifted
    with overridden(shift_typical=0.3, shift_z=1.0) as tuned:
        assert tuned is knobs() and tuned.shift_typical == 0.3
        assert policy.under_shift(True).typical_threshold == 0.3
        assert folder.shifted
    assert knobs() is DEFAULT
    assert policy.under_shift(True).typical_threshold == DEFAULT.shift_typical
    assert not folder.shifted


def test_an_unknown_knob_is_refused_and_nothing_changes() -> None:
    with pytest.raises(TypeError), overridden(no_such_knob=1):
        pass
    assert knobs() is DEFAULT
