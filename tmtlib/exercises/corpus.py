"""Checks for notebook 00 (overview and data): test-vocabulary coverage, pieces per word, and a
pretraining pool that no evaluation sentence can leak into."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

from .. import data
from ..subwords import Tokenizer, normalize
from . import Verdict, describe, expect, run_check, samples

Pairs = Sequence[tuple[str, str]]


def _type_coverage(subset: Pairs, test: Pairs) -> float:
    """Share of the lower-cased German word types of ``test`` that occur in ``subset`` (notebook
    00)."""
    test_words = {w for _, de in test for w in de.lower().split()}
    seen = {w for _, de in subset for w in de.lower().split()}
    return len(test_words & seen) / len(test_words)


def _token_coverage(subset: Pairs, test: Pairs) -> float:
    """The same share counted over running words (tokens) instead of types: a typical slip."""
    seen = {w for _, de in subset for w in de.lower().split()}
    tokens = [w for _, de in test for w in de.lower().split()]
    return sum(w in seen for w in tokens) / len(tokens)


def _coverage_attempt(my_coverage: Callable[[Pairs, Pairs], float]) -> str:
    train, test = data.load_parallel("en", "de"), data.load_parallel("en", "de", "test_2016_flickr")
    lines = []
    for n in (1000, 10000):
        subset = data.low_resource_subset(train, n, seed=0)
        expected, got = _type_coverage(subset, test), my_coverage(subset, test)
        expect(
            isinstance(got, (int, float)),
            f"return a number (a share between 0 and 1), not {describe(got)}",
        )
        expect(
            0.0 <= got <= 1.0,
            f"{got:.3f} is not a share: return a fraction in [0, 1] (did you multiply by 100?)",
        )
        if abs(got - expected) > 1e-9:
            hint = ""
            if abs(got - _token_coverage(subset, test)) < 1e-9:
                hint = (
                    " You counted running words (tokens); count distinct word *types* (use sets)."
                )
            expect(
                False,
                f"with {n:,} pairs the share of German test word types seen in training is "
                f"{expected:.4f}, yours is {got:.4f}.{hint} Lower-case, split on whitespace, "
                "and look at the German side only.",
            )
        lines.append(f"{n:,} pairs: {100 * got:.1f}%")
    return "matches on the real test set (" + "; ".join(lines) + ")"


def check_test_coverage(my_coverage: Callable[[Pairs, Pairs], float]) -> Verdict:
    """``my_coverage(subset, test)`` -> the share of German test word types seen in ``subset``."""
    return run_check("test-vocabulary coverage", lambda: _coverage_attempt(my_coverage))


def _pieces_per_word(tokenizer: Tokenizer, sentences: Sequence[str]) -> float:
    """Pieces per whitespace word, without BOS/EOS/tags (notebook 00's measure of sequence
    length)."""
    return sum(map(len, tokenizer.encode(list(sentences)))) / sum(len(s.split()) for s in sentences)


def _pieces_attempt(my_pieces_per_word: Callable[[Tokenizer, Sequence[str]], float]) -> str:
    tokenizer, lines = samples.tokenizer(), []
    for lang in ("en", "de"):
        sentences = list(samples.captions(lang, 500))
        expected, got = (
            _pieces_per_word(tokenizer, sentences),
            my_pieces_per_word(tokenizer, sentences),
        )
        expect(isinstance(got, (int, float)), f"return a number, not {describe(got)}")
        per_char = sum(len(s) for s in sentences) / sum(len(s.split()) for s in sentences)
        expect(
            abs(got - per_char) > 1e-6,
            "you counted characters per word; count the pieces of "
            "`tokenizer.encode(sentences)` instead",
        )
        expect(
            abs(got - 1 / expected) > 1e-6, "you computed words per piece: divide pieces by words"
        )
        words = sum(len(s.split()) for s in sentences)
        extra = (got - expected) * words / len(sentences)
        expect(
            abs(got - expected) < 1e-9,
            f"on 500 {lang} validation captions: {expected:.4f} pieces per word, yours {got:.4f}"
            + (
                f" (≈ {extra:.1f} pieces too many per sentence: do not count BOS/EOS or a "
                "language tag)"
                if 0.5 < extra < 3.5
                else ""
            ),
        )
        lines.append(f"{lang}: {got:.2f}")
    return "matches on real captions (" + ", ".join(lines) + " pieces per word)"


def check_pieces_per_word(
    my_pieces_per_word: Callable[[Tokenizer, Sequence[str]], float],
) -> Verdict:
    """``my_pieces_per_word(tokenizer, sentences)`` -> pieces per whitespace word."""
    return run_check("pieces per word", lambda: _pieces_attempt(my_pieces_per_word))


def _first(items) -> str:
    """The first of ``items`` (in corpus order) for a message, or nothing."""
    return repr(next(iter(items), ""))


def _pool_attempt(my_pool: Callable[[str], list[str]]) -> str:
    # a mirror without the 2017/2018 test sets warns once; not the learner's fault
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        banned, expected = data.evaluation_sentences("de"), data.pretraining_corpus("de")
    got = my_pool("de")
    expect(isinstance(got, list), f"return a list of sentences, not {describe(got)}")
    leaked = [s for s in got if normalize(s) in banned]
    expect(
        not leaked,
        f"{len(leaked):,} sentences of your pool are validation or test sentences, e.g. "
        f"{_first(leaked)}: compare *normalised* text (tmtlib.subwords.normalize) with "
        "data.evaluation_sentences('de')",
    )
    expect(
        len(set(got)) == len(got),
        f"your pool has {len(got) - len(set(got)):,} duplicates: keep the "
        "first occurrence of each sentence only",
    )
    unnormalised = [s for s in got if s != normalize(s)]
    expect(
        not unnormalised,
        f"{len(unnormalised):,} sentences are not normalised, e.g. {_first(unnormalised)}",
    )
    missing = set(expected) - set(got)
    expect(
        not missing,
        f"{len(missing):,} clean sentences are missing, e.g. {_first(sorted(missing))}: drop "
        "only evaluation sentences, duplicates and empty lines",
    )
    expect(
        got == expected,
        "the right sentences, but not in corpus order: keep the first occurrences in order",
    )
    return f"{len(got):,} German sentences, none of them in a validation or test set"


def check_pretraining_pool(my_pool: Callable[[str], list[str]]) -> Verdict:
    """``my_pool(lang)`` -> the task-2 captions of ``lang``, normalised, deduplicated, without any
    validation or test sentence (as ``tmtlib.data.pretraining_corpus``)."""
    return run_check("leak-free pretraining pool", lambda: _pool_attempt(my_pool))
