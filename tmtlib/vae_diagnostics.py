"""Measuring a trained sentence VAE: how good a density model it is, and whether its decoder reads
z.

Training reports -ELBO per token, but the validation figure of ``tmtlib.train.validation_loss``
decodes from the posterior mean z = mu: its reconstruction term is log p(x | mu), not the ELBO's
E_q[log p(x | z)], so "reconstruction + KL" there is not -ELBO. The functions here measure a VAE
properly, on a fixed list of examples (each with a source equal to its target, as
``tmtlib.objectives.monolingual_examples`` builds them):

* ``latent_samples``: S draws z_s ~ q(z|x) per sentence with log p(x|z_s) and log p(z_s)/q(z_s|x);
* ``elbo``: E_q[log p(x|z)] estimated with those S samples, minus the closed-form KL;
* ``importance_weighted_nll``: the bound of Burda et al. (2016, eq. 8),
  log p(x) >= L_k = E[log 1/k sum_i p(x, z_i) / q(z_i|x)], which tightens as k grows (L_1 = ELBO);
* ``active_units``: the dimensions whose posterior mean varies over sentences (Burda et al. 2016
  §5.2);
* ``mutual_information``: I(x; z) under the encoder's joint q(x, z) = p_data(x) q(z|x), as He et
  al. (2019, "Lagging inference networks", §4 and their code) estimate it;
* ``shuffled_latents``: each sentence decoded from another sentence's z; if the decoder ignored z
  the reconstruction would not change;
* ``cross_attention_gradients``: the gradient each cross-attention projection gets from the VAE
  loss. The latent memory is one vector, so softmax over one key is 1 and the query and key
  projections get no gradient (only rounding noise, ~1e-8): only the value and output projections
  learn. ``cross_attention_change``: how far each moved from its initialisation (Adam, which
  scales each coordinate's step by its gradient's running size, turns the noise into small
  random steps; weight decay shrinks them).

Per-token figures are divided by the real target tokens (EOS included), as in training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .batching import Example, collate, token_batches
from .decode import evaluating
from .models import Seq2Seq
from .objectives import Objective, gaussian_kl
from .subwords import PAD_ID

LOG_2PI = math.log(2 * math.pi)


def _batches(examples: Sequence[Example], max_tokens: int) -> list[list[int]]:
    return token_batches([e.size for e in examples], max_tokens, shuffle=False)


def target_tokens(examples: Sequence[Example]) -> int:
    """Real target tokens of ``examples`` (each sentence's pieces and its EOS)."""
    return sum(len(e.tgt) + 1 for e in examples)


def posteriors(
    model: Seq2Seq, examples: Sequence[Example], max_tokens: int = 8192
) -> tuple[Tensor, Tensor]:
    """mu and logvar of q(z|x) for every example, in the examples' order: [N, L] each."""
    mu = torch.empty(len(examples), model.config.latent_dim)
    logvar = torch.empty_like(mu)
    with evaluating(model):
        for indices in _batches(examples, max_tokens):
            memory, src_pad = model.encode(collate([examples[i] for i in indices]).src)
            mu[indices], logvar[indices] = model.posterior(memory, src_pad)
    return mu, logvar


def reconstruction_log_likelihood(
    model: Seq2Seq, examples: Sequence[Example], z: Tensor, max_tokens: int = 8192
) -> Tensor:
    """log p(x_n | z_n) for every example n, summed over its tokens (teacher forcing, no dropout,
    no word dropout): [N]."""
    result = torch.empty(len(examples))
    with evaluating(model):
        for indices in _batches(examples, max_tokens):
            batch = collate([examples[i] for i in indices])
            logits = model.decode(batch.tgt_in, model.latent_memory(z[indices]))  # [B, T, V]
            nll = F.cross_entropy(
                logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD_ID, reduction="none"
            )
            result[indices] = -nll.view(batch.tgt_out.shape).sum(dim=1)
    return result


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@dataclass
class LatentSamples:
    """S posterior samples per sentence and what the bounds need of them."""

    reconstruction: Tensor  # [N, S] log p(x_n | z_ns)
    log_prior_ratio: Tensor  # [N, S] log p(z_ns) - log q(z_ns | x_n)
    kl: Tensor  # [N] closed-form KL(q(z|x_n) || p(z))
    tokens: int  # real target tokens of the N sentences

    @property
    def log_weights(self) -> Tensor:
        """log w_ns = log p(x_n, z_ns) - log q(z_ns | x_n), the importance weights of Burda et
        al."""
        return self.reconstruction + self.log_prior_ratio


def latent_samples(
    model: Seq2Seq, examples: Sequence[Example], samples: int, seed: int = 0, max_tokens: int = 8192
) -> LatentSamples:
    """Draw ``samples`` codes z ~ q(z|x) per example (seeded) and score each."""
    mu, logvar = posteriors(model, examples, max_tokens)
    generator = torch.Generator().manual_seed(seed)
    reconstruction = torch.empty(len(examples), samples)
    ratio = torch.empty_like(reconstruction)
    for s in range(samples):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)
        reconstruction[:, s] = reconstruction_log_likelihood(model, examples, z, max_tokens)
        ratio[:, s] = gaussian_log_density(
            z, torch.zeros_like(z), torch.zeros_like(z)
        ) - gaussian_log_density(z, mu, logvar)
    return LatentSamples(
        reconstruction, ratio, gaussian_kl(mu, logvar).sum(-1), target_tokens(examples)
    )


def elbo(draws: LatentSamples) -> dict[str, float]:
    """-ELBO per token, E_q[-log p(x|z)] (averaged over the S samples) + KL(q(z|x) || p(z)) in
    closed form, and its two terms (Kingma & Welling 2014, eq. 7)."""
    reconstruction = -draws.reconstruction.mean(dim=1).sum().item() / draws.tokens
    kl = draws.kl.sum().item() / draws.tokens
    return {"neg_elbo": reconstruction + kl, "reconstruction": reconstruction, "kl": kl}


def importance_weighted_nll(draws: LatentSamples, k: int) -> float:
    """-L_k per token, the importance-weighted upper bound on -log p(x) (Burda et al. 2016, eq. 8):
    L_k = log (1/k) sum_{i<=k} p(x, z_i) / q(z_i | x). The S samples are cut into S // k groups of k
    and the bound averaged over them; -L_1 is a (higher-variance) -ELBO, and -L_k falls as k
    grows."""
    groups = draws.log_weights.shape[1] // k
    if groups < 1:
        raise ValueError(
            f"k={k} needs at least k samples per sentence, there are {draws.log_weights.shape[1]}"
        )
    weights = draws.log_weights[:, : groups * k].reshape(-1, groups, k)  # [N, groups, k]
    bound = torch.logsumexp(weights, dim=-1) - math.log(k)  # [N, groups]
    return -bound.mean(dim=1).sum().item() / draws.tokens


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """How many latent dimensions d have A_d = Cov_x(E_{q(z|x)}[z_d]) > ``threshold`` (Burda et
    al. 2016 §5.2): a dimension whose posterior mean does not move with the sentence carries
    nothing to the decoder."""
    return int((mu.var(dim=0, unbiased=False) > threshold).sum())


def mutual_information(mu: Tensor, logvar: Tensor, samples: int = 10, seed: int = 0) -> float:
    """I(x; z) in nats under q(x, z) = p_data(x) q(z|x), estimated over the N sentences given,
    as He et al. (2019) do:

        I = E_x E_{q(z|x)}[log q(z|x) - log q(z)],   q(z) ~ (1/N) sum_j q(z | x_j),

    with ``samples`` draws z ~ q(z|x) per sentence. (He et al. take E_q[log q(z|x)] in closed form;
    scoring both terms on the same draws cancels most of the sampling noise.) I <= mean KL(q(z|x) ||
    p(z)) (their difference is KL(q(z) || p(z))), and the estimate cannot exceed log N."""
    n = mu.shape[0]
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(samples):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)  # [N, L]
        density = gaussian_log_density(z[:, None], mu[None], logvar[None])  # [N (z), N (x_j)]
        estimates.append(density.diagonal() - (torch.logsumexp(density, dim=1) - math.log(n)))
    return torch.cat(estimates).mean().item()


def derangement(n: int, seed: int = 0) -> Tensor:
    """A random permutation of range(n) with no fixed point: each index's successor on a random
    cycle."""
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    partner = torch.empty(n, dtype=torch.long)
    partner[order] = order.roll(-1)
    return partner


def shuffled_latents(
    model: Seq2Seq, examples: Sequence[Example], mu: Tensor, seed: int = 0, max_tokens: int = 8192
) -> dict[str, float]:
    """Reconstruction -log p(x|z) per token with each sentence's own posterior mean, and with
    another sentence's (a derangement): the gap is what the decoder takes from z. A decoder that
    ignores z has a gap of exactly 0; the relative gap is gap / own."""
    tokens = target_tokens(examples)
    own = -reconstruction_log_likelihood(model, examples, mu, max_tokens).sum().item() / tokens
    other = (
        -reconstruction_log_likelihood(
            model, examples, mu[derangement(len(examples), seed)], max_tokens
        )
        .sum()
        .item()
        / tokens
    )
    return {"own_z": own, "other_z": other, "gap": other - own, "relative_gap": (other - own) / own}


def measure(
    model: Seq2Seq,
    examples: Sequence[Example],
    samples: int = 10,
    iw_sentences: int = 200,
    iw_samples: int = 50,
    iw_k: Sequence[int] = (1, 10, 50),
    seed: int = 0,
) -> dict:
    """Every diagnostic above for one VAE on ``examples``: per-token -ELBO with ``samples`` sampled
    z per sentence and its terms, the reconstruction at z = mu (what training's validation reports),
    active units, I(x; z) and the mean KL per sentence (nats), and the shuffled-z test; and on the
    fixed subset of the first ``iw_sentences`` examples, from ``iw_samples`` draws each, -ELBO and
    the importance-weighted bound on -log p(x) for each k in ``iw_k``."""
    draws = latent_samples(model, examples, samples, seed)
    mu, logvar = posteriors(model, examples)
    at_mean = -reconstruction_log_likelihood(model, examples, mu).sum().item() / draws.tokens
    subset = examples[:iw_sentences]
    iw_draws = latent_samples(model, subset, iw_samples, seed)
    return {
        "sentences": len(examples),
        "tokens": draws.tokens,
        "samples": samples,
        "latent_dim": model.config.latent_dim,
        **elbo(draws),
        "reconstruction_at_mean": at_mean,
        "active_units": active_units(mu),
        "mutual_information": mutual_information(mu, logvar, seed=seed),
        "kl_per_sentence": draws.kl.mean().item(),
        "shuffled_z": shuffled_latents(model, examples, mu, seed),
        "importance_weighted": {
            "sentences": len(subset),
            "tokens": iw_draws.tokens,
            "samples": iw_samples,
            "neg_elbo": elbo(iw_draws)["neg_elbo"],
            "nll_bound": {str(k): importance_weighted_nll(iw_draws, k) for k in iw_k},
        },
    }


def _cross_attention_parts(
    model: Seq2Seq, of: Callable[[Tensor], Tensor]
) -> dict[str, list[Tensor]]:
    """``of(parameter)`` (the parameter's values, or its gradient) for each decoder layer's
    cross-attention query, key, value and output projection, weights and biases (kv split in
    two)."""
    d_model, parts = model.config.d_model, {"query": [], "key": [], "value": [], "output": []}
    for layer in model.decoder.layers:
        attention = layer.cross_attn
        for parameter in (attention.q.weight, attention.q.bias):
            parts["query"].append(of(parameter))
        for parameter in (attention.kv.weight, attention.kv.bias):
            parts["key"].append(of(parameter)[:d_model])
            parts["value"].append(of(parameter)[d_model:])
        for parameter in (attention.out.weight, attention.out.bias):
            parts["output"].append(of(parameter))
    return parts


def _norm(tensors: list[Tensor]) -> float:
    return math.sqrt(sum(t.double().pow(2).sum().item() for t in tensors))


def cross_attention_gradients(
    model: Seq2Seq, objective: Objective, examples: Sequence[Example]
) -> dict[str, float]:
    """The norm of the gradient of ``objective``'s loss on one batch of ``examples`` with respect to
    each kind of decoder cross-attention weight (query, key, value, output; weights and biases,
    all layers together). With one memory vector the attention weight softmax(q.k) over a
    single key is 1 whatever q and k are, so query and key get no gradient: zero up to rounding
    in the attention kernel's backward pass."""
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    objective.loss(model, collate(list(examples))).loss.backward()
    gradients = {
        name: _norm(grads)
        for name, grads in _cross_attention_parts(model, lambda p: p.grad).items()
    }
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return gradients


def cross_attention_change(model: Seq2Seq, initial: Seq2Seq) -> dict[str, float]:
    """||W - W_0|| / ||W_0|| for each kind of cross-attention weight (as in
    ``cross_attention_gradients``) between a trained ``model`` and the ``initial`` one it was
    trained from: for a VAE, query and key moved only by rounding noise and weight decay."""
    trained = _cross_attention_parts(model, Tensor.detach)
    start = _cross_attention_parts(initial, Tensor.detach)
    return {
        name: _norm([a - b for a, b in zip(trained[name], start[name])]) / _norm(start[name])
        for name in trained
    }
