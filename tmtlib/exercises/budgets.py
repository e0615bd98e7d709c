"""Checks for notebook 06 (how much does pretraining help?): paired bootstrap resampling by hand,
the BLEU-against-pairs curve from the committed records, and what pretraining is worth in pairs.

The real data are the committed records in ``data/results/budgets``: per run its test BLEU, and for
the runs recorded last, the 1,000 test translations themselves (no training needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

from .. import data, experiments
from ..evaluate import paired_bootstrap
from . import Verdict, expect, run_check

BUDGETS_DIR = Path(__file__).resolve().parents[2] / "data" / "results" / "budgets"
# records with translations
WEAK, STRONG = (
    "en-de_scratch_10000_seed2",
    "en-de_parent_dae_long_10000_seed2",
)


def recorded_hypotheses(run: str) -> list[str]:
    """The 1,000 test translations kept in the committed record ``run`` of the budgets family."""
    return json.loads((BUDGETS_DIR / f"{run}.json").read_text())["test"]["hypotheses"]


def bootstrap_cases(sentences: int = 200) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """Three comparisons on real test translations: (a, b, references).

    "identical": a system against itself; "clear": scratch (a) against a much stronger system (b);
    "close": scratch against itself with a few of its sentences replaced by the strong system's,
    a gain small enough that the p-value lies between the extremes."""
    refs = [de for _, de in data.load_parallel("en", "de", "test_2016_flickr")][:sentences]
    weak, strong = recorded_hypotheses(WEAK)[:sentences], recorded_hypotheses(STRONG)[:sentences]
    nudged = [s if i % 25 == 0 else w for i, (w, s) in enumerate(zip(weak, strong))]
    return {
        "identical": (weak, weak, refs),
        "clear": (weak, strong, refs),
        "close": (weak, nudged, refs),
    }


def check_paired_bootstrap(
    my_bootstrap: Callable[..., float], n_samples: int = 100, seed: int = 7
) -> Verdict:
    """Compare ``my_bootstrap(hyps_a, hyps_b, refs, n_samples, seed) -> p`` with
    ``tmtlib.evaluate.paired_bootstrap`` (Koehn 2004) on real test translations of the budgets runs.

    The protocol to follow: ``indices = np.random.default_rng(seed).integers(0, n, size=(n_samples,
    n))`` (row s is resample s), corpus BLEU of a and of b on each resample, and ``p = (#{resamples
    where b does not beat a} + 1) / (n_samples + 1)`` (ties count against b)."""

    def attempt() -> str:
        lines = []
        for case, (a, b, refs) in bootstrap_cases().items():
            # first: a stub stops here
            got = my_bootstrap(list(a), list(b), list(refs), n_samples, seed)
            expected = paired_bootstrap(a, b, refs, n_samples=n_samples, seed=seed).p_value
            expect(
                isinstance(got, (float, int)) and not isinstance(got, bool),
                f"return the p-value as a number, not {type(got).__name__}",
            )
            expect(
                math.isclose(got, expected, abs_tol=1e-9),
                _bootstrap_hint(case, float(got), expected, n_samples),
            )
            lines.append(f"{case} p = {expected:.3f}")
        return "your p-values equal tmtlib.evaluate.paired_bootstrap's (" + ", ".join(lines) + ")"

    return run_check("paired bootstrap by hand", attempt)


def _bootstrap_hint(case: str, got: float, expected: float, n: int) -> str:
    """What a p-value that differs from the reference most likely got wrong."""
    count = expected * (n + 1) - 1  # resamples on which b did not beat a
    hint = "follow the protocol exactly: the same indices, BLEU on each resample, ties against b"
    if math.isclose(got, count / n, abs_tol=1e-9):
        hint = "you left out the add-one correction: p = (count + 1) / (n_samples + 1)"
    elif math.isclose(got, 1 - expected, abs_tol=2 / n):
        hint = "you counted the resamples where b wins; p is the share where b does NOT beat a"
    elif case == "identical":
        hint = "a system compared with itself never wins: count ties (b == a) against b, so p = 1"
    return f"on the {case!r} comparison your p = {got:.4f}, the reference {expected:.4f}: {hint}"


Curve = dict[int, tuple[float, float | None]]


def reference_curve(records_dir: Path, init: str) -> Curve:
    """Test BLEU per budget of one initialisation: {train pairs: (mean, sample sd or None)},
    computed by ``tmtlib.experiments.summarise`` from the committed records."""
    records = experiments.recorded(records_dir)
    rows = {row["system"]: row for row in experiments.summarise(list(records), records)}
    curve = {}
    for cell, record in records.items():
        if cell.variant == f"en-de_{init}" and cell.system in rows:
            row = rows[cell.system]
            curve[record["data"]["train_pairs"]] = (row["bleu_mean"], row["bleu_std"])
    return dict(sorted(curve.items()))


def check_budget_curve(my_curve: Callable[[Path, str], Curve]) -> Verdict:
    """Compare ``my_curve(records_dir, init) -> {pairs: (mean BLEU, sd or None)}`` with the summary
    that ``tmtlib.experiments`` computes from the committed budgets records, for scratch and DAE."""

    def attempt() -> str:
        for init in ("scratch", "dae"):
            got, expected = my_curve(BUDGETS_DIR, init), reference_curve(BUDGETS_DIR, init)
            expect(
                isinstance(got, dict),
                f"return a dict {{pairs: (mean, sd)}}, not {type(got).__name__}",
            )
            expect(
                set(got) == set(expected),
                f"{init}: your budgets are {sorted(got)}, the records hold {sorted(expected)} (key "
                "by record['data']['train_pairs'], an int; 'all' is 29,000)",
            )
            for pairs, (mean, sd) in expected.items():
                my_mean, my_sd = got[pairs]
                expect(
                    math.isclose(my_mean, mean, abs_tol=1e-6),
                    f"{init} at {pairs:,} pairs: your mean BLEU {my_mean:.3f}, the "
                    f"records' {mean:.3f} "
                    "(average record['test']['bleu']['score'] over that budget's seeds)",
                )
                if sd is None:
                    expect(
                        my_sd is None,
                        f"{init} at {pairs:,} pairs has one seed: its spread is None, not {my_sd}",
                    )
                    continue
                expect(
                    my_sd is not None and math.isclose(my_sd, sd, abs_tol=1e-6),
                    f"{init} at {pairs:,} pairs: your sd {my_sd}, the reference {sd:.3f} "
                    "(the sample standard "
                    "deviation, dividing by seeds - 1: statistics.stdev or np.std(..., ddof=1))",
                )
        return f"your curve matches the records at {', '.join(f'{p:,}' for p in expected)} pairs"

    return run_check("BLEU against pairs, from the records", attempt)


def pairs_needed(curve: dict[int, float], target_bleu: float) -> float | None:
    """How many pairs a system with this BLEU curve needs to reach ``target_bleu``: linear
    interpolation in log(pairs) between the two budgets around it; None outside the curve."""
    points = sorted(curve.items())
    for (low_pairs, low_bleu), (high_pairs, high_bleu) in pairwise(points):
        if low_bleu <= target_bleu <= high_bleu and high_bleu > low_bleu:
            share = (target_bleu - low_bleu) / (high_bleu - low_bleu)
            return math.exp(
                math.log(low_pairs) + share * (math.log(high_pairs) - math.log(low_pairs))
            )
    return None


def check_pairs_needed(
    my_pairs_needed: Callable[[dict[int, float], float], float | None],
) -> Verdict:
    """Compare ``my_pairs_needed(scratch_curve, bleu)`` with :func:`pairs_needed` on the scratch
    curve of the committed records, for every DAE score (and for scores outside the curve)."""

    def attempt() -> str:
        scratch = {
            pairs: mean for pairs, (mean, _) in reference_curve(BUDGETS_DIR, "scratch").items()
        }
        dae = {pairs: mean for pairs, (mean, _) in reference_curve(BUDGETS_DIR, "dae").items()}
        targets = [
            *dae.values(),
            min(scratch.values()) - 1,
            (min(scratch.values()) + max(scratch.values())) / 2,
        ]
        for target in targets:
            got, expected = my_pairs_needed(dict(scratch), target), pairs_needed(scratch, target)
            if expected is None:
                expect(
                    got is None,
                    f"scratch never reaches (or starts above) {target:.1f} BLEU on the recorded "
                    f"budgets, so return None rather than {got} (do not extrapolate)",
                )
                continue
            expect(
                got is not None,
                f"scratch reaches {target:.1f} BLEU between two recorded budgets "
                f"({expected:,.0f} pairs), but you returned None",
            )
            linear = _linear_guess(scratch, target)
            hint = (
                " you interpolated linearly in pairs; interpolate in log(pairs), as the "
                "curve is drawn"
                if linear is not None and math.isclose(got, linear, rel_tol=1e-6)
                else ""
            )
            expect(
                math.isclose(got, expected, rel_tol=1e-6),
                f"for {target:.2f} BLEU you say {got:,.0f} pairs, the reference "
                f"{expected:,.0f}.{hint}",
            )
        return "your interpolation matches the reference for every DAE score and outside the curve"

    return run_check("pairs needed by scratch", attempt)


def _linear_guess(curve: dict[int, float], target: float) -> float | None:
    points = sorted(curve.items())
    for (x0, y0), (x1, y1) in pairwise(points):
        if y0 <= target <= y1 and y1 > y0:
            return x0 + (target - y0) / (y1 - y0) * (x1 - x0)
    return None
