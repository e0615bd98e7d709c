"""Notebook 01's exercise checks: tmtlib's own functions pass, typical slips fail with the
reason."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from tmtlib.exercises import autoencoders as checks
from tmtlib.noise import infill_spans, mask_tokens
from tmtlib.objectives import token_nll

pytestmark = pytest.mark.usefixtures("tokenizer")


def test_reconstruction_nll_check():
    assert checks.check_reconstruction_nll(lambda logits, targets: token_nll(logits, targets)[0])
    padded = checks.check_reconstruction_nll(
        lambda logits, targets: F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    )
    assert not padded and "padding" in padded.message
    negative = checks.check_reconstruction_nll(
        lambda logits, targets: -token_nll(logits, targets)[0]
    )
    assert not negative and "sign" in negative.message
    summed = checks.check_reconstruction_nll(lambda logits, targets: token_nll(logits, targets)[1])
    assert not summed and "sum" in summed.message


def test_token_masking_check():
    assert checks.check_token_masking(mask_tokens)
    too_many = checks.check_token_masking(
        lambda t, p, m, rng: mask_tokens(t, min(1.0, 2 * p), m, rng)
    )
    assert not too_many and "masked 3" in too_many.message
    deleting = checks.check_token_masking(lambda t, p, m, rng: [x for x in t if rng.random() >= p])
    assert not deleting and "keeps the length" in deleting.message

    def in_place(tokens, p, mask_id, rng):
        for i in range(len(tokens)):
            tokens[i] = mask_id if rng.random() < p else tokens[i]
        return tokens

    assert "changed its input" in checks.check_token_masking(in_place).message


def test_span_infilling_check():
    assert checks.check_span_infilling(infill_spans)
    per_token = checks.check_span_infilling(lambda t, r, m, rng, **_: mask_tokens(t, r, m, rng))
    assert not per_token and "ONE mask" in per_token.message
    dropped = checks.check_span_infilling(
        lambda t, r, m, rng, **_: [x for x in infill_spans(t, r, m, rng) if x != m]
    )
    assert not dropped and "single masks" in dropped.message
    short = checks.check_span_infilling(
        lambda t, r, m, rng, **_: infill_spans(t, r, m, rng, poisson_lambda=1.0)
    )
    assert not short and "Poisson" in short.message
