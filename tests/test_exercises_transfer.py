"""Notebook 05's exercise checks: the references pass, typical slips fail with the reason."""

from __future__ import annotations

import math

import pytest

from tmtlib.exercises import transfer as checks
from tmtlib.transfer import freeze

pytestmark = pytest.mark.usefixtures("tokenizer")


def brevity_penalty(c, r):
    return 1.0 if c >= r else math.exp(1 - r / c)


def test_brevity_penalty_check():
    assert checks.check_brevity_penalty(brevity_penalty)
    swapped = checks.check_brevity_penalty(lambda c, r: brevity_penalty(r, c))
    assert not swapped and "shorter than the references" in swapped.message
    always = checks.check_brevity_penalty(lambda c, r: math.exp(1 - r / c))
    assert not always and "no penalty" in always.message
    inverted = checks.check_brevity_penalty(lambda c, r: math.exp(1 - c / r) if c < r else 1.0)
    assert not inverted and "swapped" in inverted.message
    ratio = checks.check_brevity_penalty(lambda c, r: min(1.0, c / r))
    assert not ratio and "exp(1 - r / c)" in ratio.message


def test_clipped_precisions_check():
    references = checks.test_references(50)
    assert checks._unclipped_precisions(references, references) == [1.0] * 4
    assert checks.check_clipped_precisions(lambda outputs, refs: checks._reference_precisions(outputs, refs))
    unclipped = checks.check_clipped_precisions(checks._unclipped_precisions)
    assert not unclipped and "did not clip" in unclipped.message
    percent = checks.check_clipped_precisions(
        lambda outputs, refs: [100 * p for p in checks._reference_precisions(outputs, refs)])
    assert not percent and "percentages" in percent.message


def test_freeze_embeddings_check():
    assert checks.check_freeze_embeddings(lambda model: freeze(model, "embeddings"))
    too_much = checks.check_freeze_embeddings(lambda model: freeze(model, ["embeddings", "encoder"]))
    assert not too_much and "encoder" in too_much.message and "trainable" in too_much.message
    nothing = checks.check_freeze_embeddings(lambda model: None)
    assert not nothing and "embed.weight" in nothing.message
