"""sacreBLEU scores, signatures, per-sentence chrF and the paired bootstrap test."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sacrebleu

from tmtlib import evaluate
from tmtlib.evaluate import BootstrapResult, Score

WORDS = (
    "a man woman dog child ball street red blue plays runs sits on in the with near "
    "two three young old big small house water grass looks at holds bike"
).split()


def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))).capitalize() + "."
        for _ in range(n)
    ]


def _corrupt(sentences: list[str], seed: int = 1) -> list[str]:
    """A clearly worse system: about a third of the words replaced."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) if rng.random() < 0.35 else w for w in s.split())
        for s in sentences
    ]


REFS = _corpus(200)
WORSE = _corrupt(REFS)
HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
GOLD = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]


# --- corpus scores ------------------------------------------------------------------------------


def test_perfect_translations_score_100():
    scores = evaluate.evaluate(REFS, REFS)
    assert set(scores) == {"bleu", "chrf", "chrf++"}
    assert all(score.value == pytest.approx(100.0) for score in scores.values())


def test_scores_match_sacrebleu_directly():
    assert evaluate.bleu(HYPS, GOLD).value == sacrebleu.corpus_bleu(HYPS, [GOLD]).score
    assert evaluate.chrf(HYPS, GOLD).value == sacrebleu.corpus_chrf(HYPS, [GOLD]).score
    assert (
        evaluate.chrf(HYPS, GOLD, word_order=2).value
        == sacrebleu.corpus_chrf(HYPS, [GOLD], word_order=2).score
    )
    assert 0 < evaluate.bleu(HYPS, GOLD).value < 100


def test_names_signatures_and_formatting():
    scores = evaluate.evaluate(HYPS, GOLD)
    assert [s.name for s in scores.values()] == ["BLEU", "chrF2", "chrF2++"]
    for score in scores.values():
        assert "version:" in score.signature and "nrefs:1" in score.signature
        assert "case:mixed" in score.signature
    assert "tok:13a" in scores["bleu"].signature and "nw:2" in scores["chrf++"].signature
    text = str(scores["bleu"])
    assert text == f"BLEU = {scores['bleu'].value:.1f} ({scores['bleu'].signature})"
    assert text.startswith("BLEU = ") and "|version:" in text


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        evaluate.bleu(HYPS[:2], GOLD)
    with pytest.raises(ValueError, match="empty"):
        evaluate.chrf([], [])
    with pytest.raises(TypeError, match="single string"):
        evaluate.bleu("The dog bit the man.", "The dog bit the man.")
    with pytest.raises(ValueError, match="word_order"):
        evaluate.chrf(HYPS, GOLD, word_order=1)
    with pytest.raises(ValueError, match="unknown metric 'ter'"):
        evaluate.paired_bootstrap(HYPS, HYPS, GOLD, metric="ter")
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        evaluate.paired_bootstrap(HYPS, HYPS[:2], GOLD)


def test_sentence_chrf_scores_each_sentence():
    scores = evaluate.sentence_chrf(HYPS, GOLD)
    assert len(scores) == 3 and all(0.0 <= s <= 100.0 for s in scores)
    assert scores[0] == pytest.approx(100.0)
    assert scores == [sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(HYPS, GOLD)]
    assert min(evaluate.sentence_chrf(WORSE, REFS)) < 100.0


# --- paired bootstrap ---------------------------------------------------------------------------


def test_identical_systems_are_not_significantly_different():
    result = evaluate.paired_bootstrap(WORSE, WORSE, REFS, n_samples=200)
    assert result.delta == 0.0 and result.p_value == 1.0 and not result.significant
    assert "not significantly better" in str(result)


@pytest.mark.parametrize("metric", ["bleu", "chrf", "chrf++"])
def test_a_clearly_better_system_is_significant(metric):
    result = evaluate.paired_bootstrap(WORSE, REFS, REFS, metric=metric, n_samples=300)
    assert result.delta > 10 and result.p_value < 0.05 and result.significant
    assert result.p_value == 1 / 301  # b won every sample; add-one keeps p above 0
    assert "b is significantly better than a" in str(result)
    backwards = evaluate.paired_bootstrap(REFS, WORSE, REFS, metric=metric, n_samples=300)
    assert backwards.delta < -10 and backwards.p_value == 1.0


@pytest.mark.parametrize("metric", ["bleu", "chrf", "chrf++"])
def test_observed_scores_equal_the_direct_scores(metric):
    result = evaluate.paired_bootstrap(
        WORSE, _corrupt(REFS, seed=2), REFS, metric=metric, n_samples=50
    )
    direct = evaluate.evaluate(WORSE, REFS)[metric]
    assert result.a == direct
    assert result.b == evaluate.evaluate(_corrupt(REFS, seed=2), REFS)[metric]
    assert result.metric == direct.name
    assert result.delta == result.b.value - result.a.value
    assert result.ci_a[0] <= result.a.value <= result.ci_a[1]


def test_same_seed_same_result_other_seed_other_samples():
    other = _corrupt(REFS, seed=3)
    first = evaluate.paired_bootstrap(WORSE, other, REFS, n_samples=200, seed=7)
    assert evaluate.paired_bootstrap(WORSE, other, REFS, n_samples=200, seed=7) == first
    assert evaluate.paired_bootstrap(WORSE, other, REFS, n_samples=200, seed=8).ci_a != first.ci_a
    assert isinstance(first, BootstrapResult) and isinstance(first.a, Score)


def test_fast_resampling_equals_scoring_resampled_strings():
    """The sufficient-statistics shortcut gives exactly what re-scoring each resample would."""
    refs, hyps_a, hyps_b = REFS[:40], WORSE[:40], _corrupt(REFS[:40], seed=4)
    result = evaluate.paired_bootstrap(hyps_a, hyps_b, refs, n_samples=30, seed=5)
    indices = np.random.default_rng(5).integers(0, 40, size=(30, 40))

    def scores(hyps: list[str]) -> np.ndarray:
        return np.array(
            [
                sacrebleu.corpus_bleu([hyps[i] for i in row], [[refs[i] for i in row]]).score
                for row in indices
            ]
        )

    slow_a, slow_b = scores(hyps_a), scores(hyps_b)
    assert result.p_value == (np.sum(slow_b <= slow_a) + 1) / 31
    assert result.ci_a == pytest.approx(tuple(np.percentile(slow_a, [2.5, 97.5])), abs=1e-9)
    assert result.ci_b == pytest.approx(tuple(np.percentile(slow_b, [2.5, 97.5])), abs=1e-9)


def test_bootstrap_reads_the_strings_once_per_system(monkeypatch):
    """Fast by construction, not by a timer: the sentences' statistics are extracted once per
    system, however many resamples (re-scoring the strings of 1,000 samples would take minutes)."""
    from sacrebleu.metrics import BLEU

    refs = _corpus(200, seed=6)
    calls = []
    extract = BLEU._extract_corpus_statistics
    monkeypatch.setattr(
        BLEU,
        "_extract_corpus_statistics",
        lambda self, *args: calls.append(len(args[0])) or extract(self, *args),
    )
    for n_samples in (10, 1000):
        calls.clear()
        evaluate.paired_bootstrap(_corrupt(refs), _corrupt(refs, seed=2), refs, n_samples=n_samples)
        assert calls == [200, 200], f"{n_samples} resamples: strings scored {len(calls)} times"


def test_multiple_references_per_sentence_match_sacrebleu():
    hyps = ["a dog runs on the grass", "two men play chess"]
    refs = [
        ["a dog is running on grass", "the dog runs on the grass"],
        ["two men are playing chess", "men play"],
    ]
    ours = evaluate.bleu(hyps, refs)
    theirs = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs], [r[1] for r in refs]])
    assert (
        ours.value == pytest.approx(theirs.score)
        and ours.value > evaluate.bleu(hyps, [r[0] for r in refs]).value
    )
    with pytest.raises(ValueError, match="same number"):
        evaluate.bleu(hyps, [["one"], ["one", "two"]])


def test_sacrebleu_is_the_pinned_version():
    """tmtlib.evaluate calls sacrebleu's private statistics helpers: they are tested at one
    version."""
    import importlib.metadata
    from pathlib import Path

    pins = [
        line
        for line in (Path(__file__).parents[1] / "requirements.txt").read_text().splitlines()
        if line.startswith("sacrebleu==")
    ]
    assert pins == [f"sacrebleu=={importlib.metadata.version('sacrebleu')}"]


def test_the_bootstrap_floor_is_written_as_a_bound() -> None:
    assert evaluate.p_value_text(1 / 1001) == "≤ 0.001"
    assert evaluate.p_value_text(0.051) == "0.051"
    assert evaluate.p_value_text(0.0025) == "0.003"
    assert evaluate.p_value_text(1 / 101, samples=100) == "≤ 0.010"
    assert (evaluate.p_phrase(1 / 1001), evaluate.p_phrase(0.051)) == ("≤ 0.001", "= 0.051")


def test_a_comparison_at_the_floor_prints_its_p_value_as_a_bound() -> None:
    refs = [f"ein hund läuft über die wiese nummer {i} ." for i in range(40)]
    result = evaluate.paired_bootstrap(["eine katze ."] * 40, refs, refs, n_samples=1000)
    assert "p ≤ 0.001 (1000 samples)" in str(result) and "p = " not in str(result)
