"""Notebook 03's exercise checks: tmtlib's own functions pass, typical slips fail with the
reason."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tmtlib.batching import collate
from tmtlib.exercises import pretraining as checks
from tmtlib.exercises import samples
from tmtlib.objectives import token_nll
from tmtlib.subwords import EOS_ID

pytestmark = pytest.mark.usefixtures("tokenizer")


def test_lm_example_check():
    assert checks.check_lm_example(lambda ids, tag: ([tag, *ids], [*ids, EOS_ID]))
    unshifted = checks.check_lm_example(lambda ids, tag: ([tag, *ids], [tag, *ids]))
    assert not unshifted and "shift by one" in unshifted.message
    no_eos = checks.check_lm_example(lambda ids, tag: ([tag, *ids[:-1]], list(ids)))
    assert not no_eos and "EOS" in no_eos.message


def corpus_perplexity(model, batches):
    nll = sum(float(token_nll(model.decode(b.tgt_in), b.tgt_out)[1]) for b in batches)
    return math.exp(nll / sum(b.tgt_tokens for b in batches))


def mean_of_batch_means(model, batches):
    return math.exp(
        sum(float(token_nll(model.decode(b.tgt_in), b.tgt_out)[0]) for b in batches) / len(batches)
    )


def padding_counted(model, batches):
    nll = [
        float(F.cross_entropy(model.decode(b.tgt_in).flatten(0, 1), b.tgt_out.flatten()))
        for b in batches
    ]
    return math.exp(sum(nll) / len(nll))


def label_smoothed(model, batches):
    loss = sum(
        float(token_nll(model.decode(b.tgt_in), b.tgt_out, 0.1)[0]) * b.tgt_tokens for b in batches
    )
    return math.exp(loss / sum(b.tgt_tokens for b in batches))


def test_perplexity_check():
    assert checks.check_perplexity(corpus_perplexity)
    for wrong, hint in (
        (mean_of_batch_means, "a mean of per-batch means"),
        (padding_counted, "padding counted"),
        (label_smoothed, "label smoothing"),
        (lambda m, b: math.log(corpus_perplexity(m, b)), "no exp"),
    ):
        verdict = checks.check_perplexity(wrong)
        assert (
            not verdict and hint in verdict.message and "validation_loss gives" in verdict.message
        ), verdict


def test_perplexity_reference_is_the_corpus_perplexity():
    model, examples = samples.tiny_model().eval(), checks.perplexity_examples()
    batches = [collate(batch) for batch in examples]
    with torch.no_grad():
        assert math.isclose(
            checks.perplexity(model, [e for batch in examples for e in batch]),
            corpus_perplexity(model, batches),
            rel_tol=1e-5,
        )


def test_parts_with_gradient_check():
    assert checks.check_parts_with_gradient(checks.parts_with_gradient)
    everything = checks.check_parts_with_gradient(
        lambda model: {"embeddings", "encoder", "decoder", "cross_attention"}
    )
    assert not everything and "after one lm step" in everything.message
