"""Evaluation with sacreBLEU (Post 2018): BLEU, chrF, chrF++ and paired bootstrap resampling.

Scores are computed on detokenised text with sacreBLEU's defaults (13a tokenisation, cased), and
each carries sacreBLEU's signature so a number in a notebook can be reproduced and compared
honestly. ``paired_bootstrap`` (Koehn 2004) tells whether one system really beats another on a
test set; it resamples per-sentence sufficient statistics, as ``sacrebleu.significance`` does, so
1000 samples cost about as much as scoring the corpus twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric
from sacrebleu.metrics.base import Score as SacreScore

_METRICS: dict[str, Callable[[], Metric]] = {
    "bleu": BLEU,
    "chrf": CHRF,
    "chrf++": lambda: CHRF(word_order=2),
}


@dataclass(frozen=True)
class Score:
    """A corpus score with the sacreBLEU signature that makes it reproducible."""

    name: str
    value: float
    signature: str

    def __str__(self) -> str:
        return f"{self.name} = {self.value:.1f} ({self.signature})"


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    """Reject the usual mistakes: a bare string (scored as characters), empty or unequal inputs."""
    if isinstance(hyps, str) or isinstance(refs, str):
        raise TypeError("pass sequences of sentences, not a single string")
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError("cannot score an empty test set")


def _metric(name: str) -> Metric:
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}: choose from {', '.join(_METRICS)}")
    return _METRICS[name]()


def _score(metric: Metric, result: SacreScore) -> Score:
    """Our ``Score`` from a sacreBLEU score object and the metric that produced it."""
    return Score(result.name, float(result.score), str(metric.get_signature()))


References = Sequence[str] | Sequence[Sequence[str]]


def _reference_streams(refs: References) -> list[list[str]]:
    """sacreBLEU's layout (one list per reference *stream*) from one reference per sentence, or
    from a list of references per sentence (every sentence needs the same number)."""
    if all(isinstance(ref, str) for ref in refs):
        return [list(refs)]
    counts = {len(ref) for ref in refs}
    if len(counts) != 1 or 0 in counts or any(isinstance(ref, str) for ref in refs):
        raise ValueError("give every sentence the same number (at least one) of references")
    return [list(stream) for stream in zip(*refs)]


def _corpus_score(name: str, hyps: Sequence[str], refs: References) -> Score:
    _check(hyps, refs)
    metric = _metric(name)
    return _score(metric, metric.corpus_score(list(hyps), _reference_streams(refs)))


def bleu(hyps: Sequence[str], refs: References) -> Score:
    """Corpus BLEU (Papineni et al. 2002) of detokenised ``hyps`` against their references: one
    string per sentence, or a list of references per sentence (n-gram matches count against any)."""
    return _corpus_score("bleu", hyps, refs)


def chrf(hyps: Sequence[str], refs: References, word_order: int = 0) -> Score:
    """Corpus chrF (Popović 2015); ``word_order=2`` adds word bigrams, giving chrF++ (Popović
    2017)."""
    if word_order not in (0, 2):
        raise ValueError(f"word_order must be 0 (chrF) or 2 (chrF++), not {word_order}")
    return _corpus_score("chrf" if word_order == 0 else "chrf++", hyps, refs)


def evaluate(hyps: Sequence[str], refs: References) -> dict[str, Score]:
    """BLEU, chrF and chrF++ of one system, keyed ``"bleu"``, ``"chrf"``, ``"chrf++"``."""
    return {name: _corpus_score(name, hyps, refs) for name in _METRICS}


def sentence_chrf(hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
    """chrF of each sentence, in [0, 100]: sorting by it finds the worst translations.

    chrF rather than BLEU because sentence BLEU is mostly zero on short sentences."""
    _check(hyps, refs)
    metric = CHRF()
    return [float(metric.sentence_score(h, [r]).score) for h, r in zip(hyps, refs)]


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap comparison of system ``b`` against baseline ``a`` on one metric."""

    metric: str
    a: Score
    b: Score
    delta: float  # b.value - a.value on the full test set
    ci_a: tuple[float, float]  # 95% percentile interval of a's resampled scores
    ci_b: tuple[float, float]
    p_value: float  # one-sided: how often b does not beat a (see paired_bootstrap)
    n_samples: int

    @property
    def significant(self) -> bool:
        """Whether b beats a at p < 0.05."""
        return self.p_value < 0.05

    def __str__(self) -> str:
        verdict = (
            "b is significantly better than a"
            if self.significant
            else "b is not significantly better than a"
        )
        return (
            f"{self.metric}: a = {self.a.value:.1f} [{self.ci_a[0]:.1f}, {self.ci_a[1]:.1f}], "
            f"b = {self.b.value:.1f} [{self.ci_b[0]:.1f}, {self.ci_b[1]:.1f}], "
            f"delta = {self.delta:+.2f}, p {p_phrase(self.p_value, self.n_samples)} "
            f"({self.n_samples} samples): "
            f"{verdict} at p < 0.05"
        )


def p_value_text(p: float, samples: int = 1000) -> str:
    """A bootstrap p-value as text: with ``samples`` resamples the smallest value the test can give
    is 1 / (samples + 1) (``paired_bootstrap``), so that value is written as an upper bound
    (``≤ 0.001``), not as if it had been measured."""
    floor = 1 / (samples + 1)
    return f"≤ {floor:.3f}" if p <= floor + 1e-12 else f"{p:.3f}"


def p_phrase(p: float, samples: int = 1000) -> str:
    """A p-value after "p": "≤ 0.001" at the bootstrap's floor, "= 0.051" above it."""
    text = p_value_text(p, samples)
    return text if text.startswith("≤") else f"= {text}"


def _resampled_scores(metric: Metric, stats: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The metric on every resample: ``counts[s, i]`` is how often sentence ``i`` is in sample
    ``s``.

    Summing sufficient statistics is a matrix product; the integer statistics stay exact."""
    totals = counts @ stats
    return np.array([metric._compute_score_from_stats(row).score for row in totals.tolist()])


def paired_bootstrap(
    hyps_a: Sequence[str],
    hyps_b: Sequence[str],
    refs: Sequence[str],
    metric: str = "bleu",
    n_samples: int = 1000,
    seed: int = 12345,
) -> BootstrapResult:
    """Paired bootstrap resampling (Koehn 2004): does system ``b`` beat baseline ``a``?

    Draw ``n_samples`` test sets of the same size, with replacement, and score both systems on each
    one (the same sentences for both: that is the pairing). Following Koehn, b beats a with
    confidence 1 - p when it wins on that share of samples; the p-value is the share of samples on
    which b does NOT score higher than a (ties count against b), with the add-one correction
    ``p = (#{δ* ≤ 0} + 1) / (n_samples + 1)`` that sacreBLEU also applies so that a finite number of
    samples never claims p = 0. ``metric`` is ``"bleu"``, ``"chrf"`` or ``"chrf++"``.

    This deliberately differs from ``sacrebleu --paired-bs``, which runs a two-sided test of
    |δ| against bootstrap differences re-centred on their mean (after Clark et al.'s MultEval):
    there a system compared with itself gets p = 1/(n+1), "significant"; here it gets p = 1.

    Speed: per-sentence sufficient statistics are extracted once per system with sacreBLEU's
    ``_extract_corpus_statistics``; each resample only sums rows (one matrix product for all
    samples) and calls ``_compute_score_from_stats``, as ``sacrebleu.significance`` does. The
    observed scores go through the same code as ``bleu``/``chrf`` and equal them exactly.
    """
    _check(hyps_a, refs)
    _check(hyps_b, refs)
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, not {n_samples}")
    scorer = _metric(metric)
    stats_a = np.array(
        scorer._extract_corpus_statistics(list(hyps_a), [list(refs)]), dtype=np.int64
    )
    stats_b = np.array(
        scorer._extract_corpus_statistics(list(hyps_b), [list(refs)]), dtype=np.int64
    )
    a, b = (_score(scorer, scorer._aggregate_and_compute(s.tolist())) for s in (stats_a, stats_b))

    n = len(refs)
    indices = np.random.default_rng(seed).integers(0, n, size=(n_samples, n))
    counts = np.stack([np.bincount(row, minlength=n) for row in indices])
    scores_a = _resampled_scores(scorer, stats_a, counts)
    scores_b = _resampled_scores(scorer, stats_b, counts)

    not_better = int(np.sum(scores_b <= scores_a))
    return BootstrapResult(
        metric=a.name,
        a=a,
        b=b,
        delta=b.value - a.value,
        ci_a=_percentile_interval(scores_a),
        ci_b=_percentile_interval(scores_b),
        p_value=(not_better + 1) / (n_samples + 1),
        n_samples=n_samples,
    )


def _percentile_interval(scores: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)
