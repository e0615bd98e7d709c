"""Notebook 05's exercise checks: the references pass, typical slips fail with the reason."""

from __future__ import annotations

import pytest

from tmtlib.exercises import transfer as checks
from tmtlib.models import Seq2Seq, model_config
from tmtlib.transfer import freeze, part_of

pytestmark = pytest.mark.usefixtures("tokenizer")


def test_loaded_fraction_check():
    assert checks.check_loaded_fraction(checks.loaded_fraction)
    tensors = checks.check_loaded_fraction(
        lambda r: len(r.loaded) / (len(r.loaded) + len(r.initialised))
    )
    assert not tensors and "tensors counted, not parameters" in tensors.message
    with_ignored = checks.check_loaded_fraction(
        lambda r: (
            sum(r.sizes[n] for n in r.loaded)
            / (sum(r.sizes.values()) + sum(r.source_sizes[n] for n in r.ignored))
        )
    )
    assert not with_ignored and "ignored parameters in the denominator" in with_ignored.message
    random_share = checks.check_loaded_fraction(lambda r: 1 - checks.loaded_fraction(r))
    assert not random_share and "kept its random initialisation" in random_share.message
    percent = checks.check_loaded_fraction(lambda r: 100 * checks.loaded_fraction(r))
    assert not percent and "percentage" in percent.message


def test_loaded_fraction_on_the_course_starts(tokenizer):
    shares = {case: checks.loaded_fraction(report) for case, report in checks.transfer_reports()}
    assert shares["the DAE start"] == shares["the VAE start"] == 1.0
    translator = Seq2Seq(model_config("course", tokenizer.vocab_size))
    lm_parts = sum(
        p.numel()
        for name, p in translator.named_parameters()
        if part_of(name) in ("embeddings", "decoder")
    )
    assert shares["the LM start"] == lm_parts / translator.num_parameters()  # 4.42M of 7.58M
    assert (
        0
        < shares["only the encoder of a VAE"]
        < shares["a parent with 2 decoder layers, all parts"]
        < 1
    )


def test_clipped_precisions_check():
    references = checks.reference_translations(50)
    assert checks._unclipped_precisions(references, references) == [1.0] * 4
    assert checks.check_clipped_precisions(
        lambda outputs, refs: checks._reference_precisions(outputs, refs)
    )
    unclipped = checks.check_clipped_precisions(checks._unclipped_precisions)
    assert not unclipped and "did not clip" in unclipped.message
    percent = checks.check_clipped_precisions(
        lambda outputs, refs: [100 * p for p in checks._reference_precisions(outputs, refs)]
    )
    assert not percent and "percentages" in percent.message


def test_freeze_embeddings_check():
    assert checks.check_freeze_embeddings(lambda model: freeze(model, "embeddings"))
    too_much = checks.check_freeze_embeddings(
        lambda model: freeze(model, ["embeddings", "encoder"])
    )
    assert not too_much and "encoder" in too_much.message and "trainable" in too_much.message
    nothing = checks.check_freeze_embeddings(lambda model: None)
    assert not nothing and "embed.weight" in nothing.message
