"""The checks of notebook 4's exercises: right answers pass, usual slips fail with a message that
names them."""

import math

import pytest
import torch

from tmtlib.exercises.inside import (
    check_brevity_penalty,
    check_causal_attention,
    check_vaswani_learning_rate,
)


def brevity_penalty(c: int, r: int) -> float:
    return 1.0 if c > r else math.exp(1 - r / c)


def causal_attention(q, k, v):
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def vaswani_learning_rate(step: int, d_model: int, warmup: int) -> float:
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_right_answers_pass():
    for verdict in (
        check_brevity_penalty(brevity_penalty),
        check_causal_attention(causal_attention),
        check_vaswani_learning_rate(vaswani_learning_rate),
    ):
        assert verdict.ok, verdict.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_not_attempted_is_reported():
    def stub(*args):
        raise NotImplementedError

    verdict = check_brevity_penalty(stub)
    assert not verdict.ok and "not attempted" in verdict.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda c, r: math.exp(1 - c / r) if c < r else 1.0, "upside down"),
        (lambda c, r: math.exp(1 - r / c), "also when c > r"),
        (lambda c, r: 100 * brevity_penalty(c, r), "percentage"),
    ],
)
def test_brevity_penalty_slips_are_named(wrong, hint):
    verdict = check_brevity_penalty(wrong)
    assert not verdict.ok and hint in verdict.message and "sacreBLEU's is" in verdict.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
@pytest.mark.parametrize(
    "wrong, hint",
    [
        (
            lambda q, k, v: (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-1) @ v,
            "no mask",
        ),
        (lambda q, k, v: causal_attention(q * math.sqrt(q.size(-1)), k, v), "no scaling"),
        (lambda q, k, v: causal_attention(q, k, v).transpose(1, 2), "shape"),
    ],
)
def test_attention_slips_are_named(wrong, hint):
    verdict = check_causal_attention(wrong)
    assert not verdict.ok and hint in verdict.message


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda s, d, w: min(s**-0.5, s * w**-1.5), "no d_model^-0.5 factor"),
        (lambda s, d, w: d**-0.5 * min(s**-0.5, s * w**-0.5), "warmup^-0.5 instead of warmup^-1.5"),
        (lambda s, d, w: d**-0.5 * max(s**-0.5, s * w**-1.5), "max instead of min"),
        (lambda s, d, w: vaswani_learning_rate(s + 1, d, w), "steps counted from 0"),
        (lambda s, d, w: d**-0.5 * s**-0.5, "no warm-up"),
    ],
)
def test_learning_rate_slips_are_named(wrong, hint):
    verdict = check_vaswani_learning_rate(wrong)
    assert not verdict.ok and hint in verdict.message and "eq. 3 gives" in verdict.message


def test_a_learning_rate_of_another_form_gets_the_formula():
    verdict = check_vaswani_learning_rate(lambda step, d_model, warmup: 1e-3)
    assert not verdict.ok and "min(step^-0.5, step * warmup^-1.5)" in verdict.message
