"""Notebook 02's exercise checks: tmtlib's own functions pass, typical slips fail with the
reason."""

from __future__ import annotations

import pytest
import torch

from tmtlib.exercises import vae as checks
from tmtlib.objectives import KLSchedule, gaussian_kl, reparameterize

pytestmark = pytest.mark.usefixtures("tokenizer")


@pytest.mark.parametrize(
    "wrong, reason",
    [
        (lambda mu, lv: -gaussian_kl(mu, lv), "sign"),
        (lambda mu, lv: 2 * gaussian_kl(mu, lv), "twice"),
        (lambda mu, lv: gaussian_kl(mu, 2 * lv), "log σ²"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv), "forgot the -1"),
        (lambda mu, lv: gaussian_kl(mu, lv).sum(-1), "summed"),
        (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1.1), "½(μ² + σ² - log σ² - 1)"),
    ],
)
def test_gaussian_kl_check(wrong, reason):
    assert checks.check_gaussian_kl(gaussian_kl)
    verdict = checks.check_gaussian_kl(wrong)
    assert not verdict and reason in verdict.message


def test_monte_carlo_estimate_agrees_with_the_closed_form():
    mu, logvar = checks.posterior_parameters()
    estimate = checks.monte_carlo_kl(mu[:4], logvar[:4])
    assert torch.allclose(estimate, gaussian_kl(mu[:4], logvar[:4]).sum(-1), rtol=0.03)


def test_reparameterize_check():
    assert checks.check_reparameterize(reparameterize)
    detached = checks.check_reparameterize(
        lambda mu, lv: torch.normal(mu.detach(), (0.5 * lv.detach()).exp())
    )
    assert not detached and "differentiably" in detached.message
    variance = checks.check_reparameterize(lambda mu, lv: mu + lv.exp() * torch.randn_like(mu))
    assert not variance and "σ = exp(logvar / 2)" in variance.message
    no_noise = checks.check_reparameterize(lambda mu, lv: mu + (0.5 * lv).exp())
    assert not no_noise and "noise" in no_noise.message


def test_cyclical_schedule_check():
    assert checks.check_cyclical_schedule(
        lambda s, m, c: KLSchedule("cyclical", max_beta=m, cycle_steps=c)(s)
    )
    linear = checks.check_cyclical_schedule(lambda s, m, c: m * min(1.0, s / (c / 2)))
    assert not linear and "restart at 0 every cycle" in linear.message
    unscaled = checks.check_cyclical_schedule(lambda s, m, c: min(1.0, 2 * (s % c) / c))
    assert not unscaled and "max_beta" in unscaled.message


def test_checks_leave_the_callers_random_state_alone():
    state = torch.get_rng_state()
    checks.check_reparameterize(reparameterize)
    checks.check_gaussian_kl(gaussian_kl)
    assert torch.equal(state, torch.get_rng_state())
