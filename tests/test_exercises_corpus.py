"""Notebook 00's exercise checks: the reference passes, typical slips fail with a message that says
why."""

from __future__ import annotations

import pytest

from tmtlib import data
from tmtlib.exercises import corpus as checks

pytestmark = pytest.mark.usefixtures("tokenizer")


def words(pairs):
    return {w for _, de in pairs for w in de.lower().split()}


def coverage(subset, test):
    return len(words(test) & words(subset)) / len(words(test))


def not_attempted(*_):
    raise NotImplementedError


def test_coverage_check():
    assert checks.check_test_coverage(coverage)
    assert "not attempted" in checks.check_test_coverage(not_attempted).message
    percent = checks.check_test_coverage(lambda s, t: 100 * coverage(s, t))
    assert not percent and "multiply by 100" in percent.message
    tokens = checks.check_test_coverage(checks._token_coverage)
    assert not tokens and "types" in tokens.message
    cased = checks.check_test_coverage(
        lambda s, t: (
            len({w for _, de in t for w in de.split()} & {w for _, de in s for w in de.split()})
            / len({w for _, de in t for w in de.split()})
        )
    )
    assert not cased and "Lower-case" in cased.message


def test_pieces_per_word_check():
    assert checks.check_pieces_per_word(checks._pieces_per_word)
    chars = checks.check_pieces_per_word(
        lambda tok, s: sum(map(len, s)) / sum(len(x.split()) for x in s)
    )
    assert not chars and "characters" in chars.message
    with_eos = checks.check_pieces_per_word(
        lambda tok, s: sum(len(ids) + 1 for ids in tok.encode(s)) / sum(len(x.split()) for x in s)
    )
    assert not with_eos and "BOS/EOS" in with_eos.message


def test_pool_check():
    assert checks.check_pretraining_pool(lambda lang: data.pretraining_corpus(lang))
    leaky = checks.check_pretraining_pool(
        lambda lang: list(
            dict.fromkeys(data.load_monolingual(lang) + data.load_monolingual(lang, "val"))
        )
    )
    assert not leaky and "validation or test sentences" in leaky.message
    duplicated = checks.check_pretraining_pool(lambda lang: data.pretraining_corpus(lang) * 2)
    assert not duplicated and "duplicates" in duplicated.message
    shuffled = checks.check_pretraining_pool(lambda lang: sorted(data.pretraining_corpus(lang)))
    assert not shuffled and "order" in shuffled.message
