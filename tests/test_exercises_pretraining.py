"""Notebook 03's exercise checks: tmtlib's own functions pass, typical slips fail with the reason."""

from __future__ import annotations

import pytest

from tmtlib.decode import nucleus
from tmtlib.exercises import pretraining as checks
from tmtlib.subwords import EOS_ID

pytestmark = pytest.mark.usefixtures("tokenizer")


def test_lm_example_check():
    assert checks.check_lm_example(lambda ids, tag: ([tag, *ids], [*ids, EOS_ID]))
    unshifted = checks.check_lm_example(lambda ids, tag: ([tag, *ids], [tag, *ids]))
    assert not unshifted and "shift by one" in unshifted.message
    no_eos = checks.check_lm_example(lambda ids, tag: ([tag, *ids[:-1]], list(ids)))
    assert not no_eos and "EOS" in no_eos.message


def drop_the_crossing_token(scores, top_p):
    """A typical slip: keeps the tokens whose *inclusive* cumulative probability stays within top_p."""
    sorted_scores, order = scores.sort(-1, descending=True)
    drop = sorted_scores.softmax(-1).cumsum(-1) > top_p
    return scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def test_top_p_check():
    assert checks.check_top_p(nucleus)
    exclusive = checks.check_top_p(drop_the_crossing_token)
    assert not exclusive and ("crosses p" in exclusive.message or "no token is left" in exclusive.message)
    renormalised = checks.check_top_p(lambda s, p: nucleus(s, p).log_softmax(-1))
    assert not renormalised and "logits changed" in renormalised.message


def test_parts_with_gradient_check():
    assert checks.check_parts_with_gradient(checks.parts_with_gradient)
    everything = checks.check_parts_with_gradient(lambda model: {"embeddings", "encoder", "decoder",
                                                                 "cross_attention"})
    assert not everything and "after one lm step" in everything.message
