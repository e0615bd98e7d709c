"""Checks for notebook 10 (beyond translation): multi-reference BLEU by hand, iBLEU for
paraphrasing (Sun & Zhou 2012), and ROUGE-L, the longest-common-subsequence score of
summarisation (Lin 2004), on the real task-2 captions of Multi30k.

The hypotheses are real and need no model: caption 2 of each test image (a human paraphrase) and
caption 1 itself (copying the input), scored against captions 3-5, as notebook 10 scores its
systems.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sacrebleu.metrics import BLEU

from .. import pipeline
from ..evaluate import bleu
from . import Verdict, expect, run_check


def paraphrase_systems() -> tuple[dict[str, list[str]], list[str], list[list[str]]]:
    """({system: outputs}, inputs, references): the human caption and the copied input, against
    captions 3-5."""
    sources, references = pipeline.paraphrase_test_set("en")
    systems = {"human (caption 2)": [refs[0] for refs in references], "copy the input": sources}
    return systems, sources, [refs[1:] for refs in references]


def _bleu_variants(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """Scores that typical mistakes produce, to name the mistake."""
    streams = [list(stream) for stream in zip(*refs)]
    return {
        "the mean of single-reference BLEU scores: score once against all references "
        "together, an n-gram "
        "counting as matched up to its largest count in any one reference": sum(
            bleu(hyps, stream).value for stream in streams
        )
        / len(streams),
        "BLEU against the first reference only: use all of them": bleu(hyps, streams[0]).value,
        "lowercased BLEU: sacreBLEU's default is cased": BLEU(lowercase=True)
        .corpus_score(hyps, streams)
        .score,
        "BLEU on whitespace tokens: tokenise with sacreBLEU's 13a tokenizer "
        "(sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a)": BLEU(tokenize="none")
        .corpus_score(hyps, streams)
        .score,
    }


def check_multi_reference_bleu(my_bleu: Callable[[list[str], list[list[str]]], float]) -> Verdict:
    """Compare ``my_bleu(hypotheses, references per sentence) -> corpus BLEU (0-100)`` with
    ``tmtlib.evaluate.bleu`` (sacreBLEU) with three references per sentence, on real captions."""

    def attempt() -> str:
        systems, _, refs = paraphrase_systems()
        scores = []
        for name, hyps in systems.items():
            got = my_bleu(list(hyps), [list(r) for r in refs])
            expected = bleu(hyps, refs).value
            expect(
                isinstance(got, (float, int)), f"return BLEU as a number, not {type(got).__name__}"
            )
            if not math.isclose(got, expected, abs_tol=0.01):
                if math.isclose(got, expected / 100, abs_tol=1e-4):
                    expect(
                        False,
                        f"{name}: you returned {got:.4f}; sacreBLEU reports BLEU on a 0-100 scale",
                    )
                mistakes = [
                    m
                    for m, value in _bleu_variants(hyps, refs).items()
                    if math.isclose(got, value, abs_tol=0.01)
                ]
                hint = (
                    f"your number is {mistakes[0]}"
                    if mistakes
                    else "clip each n-gram's count by its largest count in any one reference, and "
                    "take the brevity penalty's reference length from the reference closest in "
                    "length to each hypothesis (the shorter one on a tie)"
                )
                expect(False, f"{name}: your BLEU {got:.2f}, sacreBLEU's {expected:.2f}: {hint}")
            scores.append(f"{name} {expected:.1f}")
        return "your multi-reference BLEU equals sacreBLEU's: " + ", ".join(scores)

    return run_check("multi-reference BLEU by hand", attempt)


def ibleu(
    hyps: Sequence[str], sources: Sequence[str], refs: Sequence[Sequence[str]], alpha: float
) -> float:
    """iBLEU (Sun & Zhou 2012): ``alpha * BLEU(hyps, refs) - (1 - alpha) * BLEU(hyps, sources)``,
    rewarding closeness to the references and penalising copying of the input."""
    return alpha * bleu(hyps, refs).value - (1 - alpha) * bleu(hyps, sources).value


def check_ibleu(
    my_ibleu: Callable[[list[str], list[str], list[list[str]], float], float],
) -> Verdict:
    """Compare ``my_ibleu(hypotheses, inputs, references, alpha)`` with :func:`ibleu` (built on
    ``tmtlib.evaluate.bleu``) for the human paraphrase and the copied input, at two alphas."""

    def attempt() -> str:
        systems, sources, refs = paraphrase_systems()
        results = []
        for name, hyps in systems.items():
            for alpha in (0.9, 0.7):
                got = my_ibleu(list(hyps), list(sources), [list(r) for r in refs], alpha)
                expected = ibleu(hyps, sources, refs, alpha)
                if not math.isclose(got, expected, abs_tol=0.01):
                    to_refs, to_input = bleu(hyps, refs).value, bleu(hyps, sources).value
                    hint = (
                        "iBLEU = alpha * BLEU(output, references) - (1 - alpha) * BLEU(output, "
                        "input)"
                    )
                    if math.isclose(got, (1 - alpha) * to_refs - alpha * to_input, abs_tol=0.01):
                        hint = "you swapped alpha and 1 - alpha: alpha weighs the references"
                    elif math.isclose(got, alpha * to_refs + (1 - alpha) * to_input, abs_tol=0.01):
                        hint = "similarity to the input is a penalty: subtract it"
                    expect(
                        False,
                        f"{name}, alpha {alpha}: your iBLEU {got:.2f}, the reference "
                        f"{expected:.2f}: {hint}",
                    )
                results.append(f"{name} at alpha {alpha}: {expected:.1f}")
        return "your iBLEU matches: " + "; ".join(results)

    return run_check("iBLEU", attempt)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming,
    O(|a||b|))."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """Sentence ROUGE-L F1 (Lin 2004) on lowercased whitespace tokens: the longest common
    subsequence gives recall LCS/|reference| and precision LCS/|hypothesis|; 0 for an empty side."""
    hyp, ref = hypothesis.lower().split(), reference.lower().split()
    common = lcs_length(hyp, ref)
    if common == 0:
        return 0.0
    recall, precision = common / len(ref), common / len(hyp)
    return 2 * precision * recall / (precision + recall)


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    best, previous = 0, [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else 0)
        best = max(best, *current)
        previous = current
    return best


def _rouge_hint(got: float, hypothesis: str, reference: str) -> str:
    hyp, ref = hypothesis.lower().split(), reference.lower().split()
    common = lcs_length(hyp, ref)
    substring = _longest_common_substring(hyp, ref)
    if common and math.isclose(got, common / len(ref)):
        return "that is the recall alone; ROUGE-L here is the F1 of recall and precision"
    if common and math.isclose(got, common / len(hyp)):
        return "that is the precision alone; ROUGE-L here is the F1 of recall and precision"
    if substring and math.isclose(got, 2 * substring / (len(hyp) + len(ref))):
        return (
            "you used the longest common substring (contiguous); a subsequence may skip words: "
            "'a man on a bike' and 'a man rides a bike' share 'a man a bike'"
        )
    return (
        "lowercase, split on whitespace, and use the longest common subsequence of the two "
        "token lists"
    )


def check_rouge_l(my_rouge_l: Callable[[str, str], float], sentences: int = 200) -> Verdict:
    """Compare ``my_rouge_l(hypothesis, reference) -> F1 in [0, 1]`` with :func:`rouge_l` on the
    human paraphrase (caption 2) against caption 3 of real test images."""

    def attempt() -> str:
        systems, _, refs = paraphrase_systems()
        pairs = list(zip(systems["human (caption 2)"], [r[0] for r in refs]))[:sentences]
        for index, (hypothesis, reference) in enumerate(pairs):
            got, expected = my_rouge_l(hypothesis, reference), rouge_l(hypothesis, reference)
            if not math.isclose(got, expected, abs_tol=1e-9):
                expect(
                    False,
                    f"image {index}: for {hypothesis!r} against {reference!r} your ROUGE-L "
                    f"is {got:.4f}, "
                    f"the reference {expected:.4f}: {_rouge_hint(got, hypothesis, reference)}",
                )
        mean = sum(rouge_l(h, r) for h, r in pairs) / len(pairs)
        return f"your ROUGE-L equals the reference on {len(pairs)} caption pairs (mean {mean:.3f})"

    return run_check("ROUGE-L", attempt)
