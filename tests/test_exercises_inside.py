"""The checks of notebook 4's exercises: right answers pass, usual slips fail with a message that names them."""

import math

import pytest
import torch

from tmtlib.decode import nucleus
from tmtlib.exercises.inside import (
    check_brevity_penalty,
    check_causal_attention,
    check_top_p,
)


def brevity_penalty(c: int, r: int) -> float:
    return 1.0 if c > r else math.exp(1 - r / c)


def causal_attention(q, k, v):
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def top_p(logits, p):
    return nucleus(logits, p)


def test_right_answers_pass():
    for verdict in (check_brevity_penalty(brevity_penalty), check_causal_attention(causal_attention),
                    check_top_p(top_p)):
        assert verdict.ok, verdict.message


def test_not_attempted_is_reported():
    def stub(*args):
        raise NotImplementedError

    verdict = check_brevity_penalty(stub)
    assert not verdict.ok and "not attempted" in verdict.message


@pytest.mark.parametrize("wrong, hint", [
    (lambda c, r: math.exp(1 - c / r) if c < r else 1.0, "upside down"),
    (lambda c, r: math.exp(1 - r / c), "also when c > r"),
    (lambda c, r: 100 * brevity_penalty(c, r), "percentage"),
])
def test_brevity_penalty_slips_are_named(wrong, hint):
    verdict = check_brevity_penalty(wrong)
    assert not verdict.ok and hint in verdict.message and "sacreBLEU's is" in verdict.message


@pytest.mark.parametrize("wrong, hint", [
    (lambda q, k, v: (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-1) @ v, "no mask"),
    (lambda q, k, v: causal_attention(q * math.sqrt(q.size(-1)), k, v), "no scaling"),
    (lambda q, k, v: causal_attention(q, k, v).transpose(1, 2), "shape"),
])
def test_attention_slips_are_named(wrong, hint):
    verdict = check_causal_attention(wrong)
    assert not verdict.ok and hint in verdict.message


def test_top_p_slips_are_named():
    def one_too_few(logits, p):  # keeps only tokens whose cumulative mass stays within p
        probs, order = logits.softmax(-1).sort(-1, descending=True)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) <= p)
        return logits.masked_fill(~keep, float("-inf"))

    verdict = check_top_p(one_too_few)
    assert not verdict.ok and ("crosses p" in verdict.message or "no token is left" in verdict.message)
    verdict = check_top_p(lambda logits, p: top_p(logits, p).softmax(-1))
    assert not verdict.ok and "changed" in verdict.message
