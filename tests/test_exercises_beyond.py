"""The notebook 10 checks accept a correct answer and name the usual mistakes."""

import pytest

from tmtlib.evaluate import bleu
from tmtlib.exercises import beyond


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_multi_reference_bleu():
    assert beyond.check_multi_reference_bleu(lambda hyps, refs: bleu(hyps, refs).value)
    first_only = beyond.check_multi_reference_bleu(
        lambda hyps, refs: bleu(hyps, [r[0] for r in refs]).value
    )
    assert not first_only and "first reference only" in first_only.message
    mean = beyond.check_multi_reference_bleu(
        lambda hyps, refs: sum(bleu(hyps, list(s)).value for s in zip(*refs)) / len(refs[0])
    )
    assert not mean and "mean of single-reference" in mean.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_ibleu():
    assert beyond.check_ibleu(beyond.ibleu)
    swapped = beyond.check_ibleu(lambda h, s, r, alpha: beyond.ibleu(h, s, r, 1 - alpha))
    assert not swapped and "swapped" in swapped.message
    added = beyond.check_ibleu(
        lambda h, s, r, alpha: alpha * bleu(h, r).value + (1 - alpha) * bleu(h, s).value
    )
    assert not added and "subtract" in added.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_rouge_l():
    assert beyond.check_rouge_l(beyond.rouge_l)
    recall = beyond.check_rouge_l(
        lambda h, r: beyond.lcs_length(h.lower().split(), r.lower().split()) / len(r.split())
    )
    assert not recall and "recall alone" in recall.message
    substring = beyond.check_rouge_l(
        lambda h, r: (
            2
            * beyond._longest_common_substring(h.lower().split(), r.lower().split())
            / (len(h.split()) + len(r.split()))
        )
    )
    assert not substring and "substring" in substring.message
