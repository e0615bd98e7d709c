"""The notebook 06 checks accept a correct answer and name the usual mistakes."""

import statistics

import pytest

from tmtlib.evaluate import paired_bootstrap
from tmtlib.exercises import budgets


def reference_p(a, b, refs, n_samples, seed):
    return paired_bootstrap(a, b, refs, n_samples=n_samples, seed=seed).p_value


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_paired_bootstrap_accepts_the_reference_and_names_mistakes():
    assert budgets.check_paired_bootstrap(reference_p)
    no_add_one = budgets.check_paired_bootstrap(
        lambda a, b, r, n, s: (reference_p(a, b, r, n, s) * (n + 1) - 1) / n
    )
    assert not no_add_one and "add-one" in no_add_one.message
    wins = budgets.check_paired_bootstrap(lambda a, b, r, n, s: 1 - reference_p(a, b, r, n, s))
    assert not wins and "NOT beat" in wins.message


def test_budget_curve_accepts_the_records_and_names_mistakes():
    assert budgets.check_budget_curve(budgets.reference_curve)
    population_sd = budgets.check_budget_curve(
        lambda folder, init: {
            p: (m, None if sd is None else sd * statistics.sqrt(2 / 3))
            for p, (m, sd) in budgets.reference_curve(folder, init).items()
        }
    )
    assert not population_sd and "ddof=1" in population_sd.message
    missing = budgets.check_budget_curve(
        lambda folder, init: {
            p: v for p, v in budgets.reference_curve(folder, init).items() if p != 10000
        }
    )
    assert not missing and "10000" in missing.message


def test_pairs_needed_accepts_the_reference_and_names_linear_interpolation():
    assert budgets.check_pairs_needed(budgets.pairs_needed)
    linear = budgets.check_pairs_needed(budgets._linear_guess)
    assert not linear and "log(pairs)" in linear.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_not_attempted_is_reported():
    def stub(*args):
        raise NotImplementedError

    verdict = budgets.check_paired_bootstrap(stub)
    assert not verdict and "not attempted" in verdict.message
