"""Checks for notebook 02 (variational autoencoders): the closed-form Gaussian KL (against
``tmtlib.objectives.gaussian_kl`` and a Monte-Carlo estimate), the reparameterisation trick, and a
cyclical KL schedule (against ``tmtlib.objectives.KLSchedule``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..objectives import KLSchedule, gaussian_kl
from . import Verdict, describe, expect, run_check, samples

GaussianFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def posterior_parameters() -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) [16, 8] of a seeded tiny VAE's encoder on 16 real captions, spread out by fixed
    factors so that the KL is far from zero in every direction."""
    batch = samples.caption_batch("en", 16)
    model = samples.tiny_model(latent_dim=8)
    with torch.no_grad():
        memory, pad = model.encode(batch.src)
        mu, logvar = model.posterior(memory, pad)
    spread = torch.linspace(-3.0, 3.0, mu.shape[1])
    return mu * 4 + spread, logvar * 4 - spread / 2


def monte_carlo_kl(
    mu: torch.Tensor, logvar: torch.Tensor, samples_per_row: int = 20000
) -> torch.Tensor:
    """KL(q || N(0, I)) per row estimated as the mean of log q(z) - log p(z) over samples z ~ q."""
    generator = torch.Generator().manual_seed(0)
    sigma = (0.5 * logvar).exp()
    eps = torch.randn(samples_per_row, *mu.shape, generator=generator)
    z = mu + sigma * eps
    log_q = (-0.5 * eps.pow(2) - 0.5 * logvar).sum(-1)  # the 2π terms cancel in the difference
    log_p = (-0.5 * z.pow(2)).sum(-1)
    return (log_q - log_p).mean(0)


def _kl_attempt(my_kl: GaussianFn) -> str:
    mu, logvar = posterior_parameters()
    expected, got = gaussian_kl(mu, logvar), my_kl(mu.clone(), logvar.clone())
    expect(torch.is_tensor(got), f"return a tensor, not {describe(got)}")
    if got.shape != expected.shape:
        summed = got.numel() in (1, mu.shape[0]) and torch.allclose(
            got.reshape(-1),
            expected.sum(-1) if got.numel() > 1 else expected.sum().reshape(1),
            rtol=1e-4,
        )
        expect(
            False,
            f"expected one KL per dimension, shape {tuple(expected.shape)}; yours has shape "
            f"{tuple(got.shape)}" + (" (the right values, summed: do not sum)" if summed else ""),
        )
    close = lambda a, b: torch.allclose(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    expect(not close(got, -expected), "your KL has the wrong sign: KL(q || p) ≥ 0")
    expect(not close(got, 2 * expected), "your KL is twice too big: the formula has a factor 1/2")
    expect(
        not close(got, gaussian_kl(mu, 2 * logvar)),
        "you used logvar as log σ: logvar is log σ², so σ² = exp(logvar)",
    )
    expect(
        not close(got, expected + 0.5),
        "your KL is 1/2 too big in every dimension: you forgot the -1",
    )
    worst = (got - expected).abs().argmax()
    row, dim = divmod(int(worst), expected.shape[1])
    expect(
        close(got, expected),
        f"at row {row}, dimension {dim} (μ = {float(mu[row, dim]):.3f}, "
        f"log σ² = {float(logvar[row, dim]):.3f}) the KL is {float(expected[row, dim]):.4f}, "
        f"yours {float(got[row, dim]):.4f}: ½(μ² + σ² - log σ² - 1)",
    )
    estimate = monte_carlo_kl(mu[:4], logvar[:4])
    gap = (got[:4].sum(-1) - estimate).abs().max()
    return (
        "matches tmtlib on 16×8 posteriors of real captions, and a Monte-Carlo estimate with "
        f"20,000 samples within {float(gap):.3f} nats (of KLs of "
        f"{float(estimate.min()):.1f}–{float(estimate.max()):.1f})"
    )


def check_gaussian_kl(my_kl: GaussianFn) -> Verdict:
    """``my_kl(mu, logvar)`` -> KL(N(mu, diag exp(logvar)) || N(0, I)) per dimension, shape of
    ``mu``."""
    return run_check("closed-form Gaussian KL", lambda: _kl_attempt(my_kl))


def _reparameterize_attempt(my_reparameterize: GaussianFn) -> str:
    mu, logvar = posterior_parameters()
    mu, logvar = mu[:4].clone().requires_grad_(), logvar[:4].clone().requires_grad_()
    z = my_reparameterize(mu, logvar)
    expect(
        torch.is_tensor(z) and z.shape == mu.shape,
        f"return z with the shape of mu {tuple(mu.shape)}, not {describe(z)}",
    )
    expect(
        z.requires_grad,
        "z does not depend on mu and logvar differentiably: compute it from them "
        "(z = mu + sigma * eps), do not sample with torch.normal",
    )
    z.sum().backward()
    expect(mu.grad is not None and bool((mu.grad != 0).all()), "no gradient reaches mu")
    expect(
        logvar.grad is not None and bool((logvar.grad != 0).any()),
        "no gradient reaches logvar: sigma must be computed from it",
    )
    # [N, 4, 8]
    draws = torch.stack([my_reparameterize(mu.detach(), logvar.detach()) for _ in range(4000)])
    expect(draws.std(0).max() > 0, "every call returned the same z: add noise eps ~ N(0, I)")
    mean_error = ((draws.mean(0) - mu.detach()) / (0.5 * logvar.detach()).exp()).abs().max()
    expect(
        mean_error < 0.15,
        f"the mean of 4,000 draws is {float(mean_error):.2f} standard deviations from mu",
    )
    ratio = draws.std(0) / (0.5 * logvar.detach()).exp()
    expect(
        not (ratio / (0.5 * logvar.detach()).exp()).sub(1).abs().lt(0.1).all(),
        "your z has standard deviation exp(logvar) = σ²; it must be σ = exp(logvar / 2)",
    )
    expect(
        ratio.sub(1).abs().max() < 0.1,
        f"the standard deviation of your z is off by up to "
        f"{100 * float(ratio.sub(1).abs().max()):.0f}%: σ = exp(logvar / 2)",
    )
    return (
        "gradients reach mu and logvar; 4,000 draws have mean mu and standard deviation "
        "exp(logvar / 2)"
    )


def _seeded_reparameterize_attempt(my_reparameterize: GaussianFn) -> str:
    """The attempt with torch's random state seeded, and the caller's restored afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return _reparameterize_attempt(my_reparameterize)


def check_reparameterize(my_reparameterize: GaussianFn) -> Verdict:
    """``my_reparameterize(mu, logvar)`` -> one z ~ N(mu, exp(logvar)) per row, differentiable in
    both."""
    return run_check(
        "reparameterisation trick", lambda: _seeded_reparameterize_attempt(my_reparameterize)
    )


def _schedule_attempt(my_beta: Callable[[int, float, int], float]) -> str:
    max_beta, cycle = 1.0, 400
    reference = KLSchedule("cyclical", max_beta=max_beta, cycle_steps=cycle)
    for step in range(0, 3 * cycle, 7):
        got, expected = my_beta(step, max_beta, cycle), reference(step)
        expect(isinstance(got, (int, float)), f"return a number, not {describe(got)}")
        if abs(got - expected) > 1e-9:
            phase = (step % cycle) / cycle
            where = "rising half" if phase < 0.5 else "flat half"
            expect(
                False,
                f"at step {step} (phase {phase:.2f} of a {cycle}-step cycle, the {where}) β should "
                f"be {expected:.4f}, yours is {got:.4f}: rise linearly from 0 to max_beta over the "
                "first half of each cycle, then stay at max_beta; restart at 0 every cycle",
            )
    expect(
        abs(my_beta(150, 0.5, 400) - KLSchedule("cyclical", max_beta=0.5, cycle_steps=400)(150))
        < 1e-9,
        "with max_beta = 0.5 your schedule does not scale: β must reach max_beta, not 1",
    )
    return f"matches tmtlib.objectives.KLSchedule('cyclical') over three cycles of {cycle} steps"


def check_cyclical_schedule(my_beta: Callable[[int, float, int], float]) -> Verdict:
    """``my_beta(step, max_beta, cycle_steps)`` -> β of cyclical KL annealing (Fu et al. 2019)."""
    return run_check("cyclical KL schedule", lambda: _schedule_attempt(my_beta))
