"""Training objectives: translation, (denoising) autoencoding, VAE, and language modelling.

Every objective trains the same ``Seq2Seq`` network, so its weights can move from one objective to
another without surgery. Each objective does two things:

* ``corrupt(example, rng)`` turns a clean example into what the model is given (identity except
  for the denoising autoencoder), at batch time, with a seeded ``random.Random``;
* ``loss(model, batch, step)`` returns a ``LossReport``: the scalar to minimise and its parts
  (summed NLL, summed KL, token and sentence counts) for logging and plots.

Per-token losses are averaged over the batch's real target tokens.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .batching import Batch, Example
from .noise import NoiseConfig, apply_noise
from .subwords import PAD_ID, UNK_ID, Tokenizer


@dataclass
class LossReport:
    """The loss to back-propagate and its parts, summed over the batch (floats are detached)."""

    loss: torch.Tensor
    nll: float  # summed negative log-likelihood of the target tokens (nats)
    tokens: int  # real target tokens
    sentences: int
    kl: float = 0.0  # summed KL(q(z|x) || p(z)) (VAE only)
    kl_weight: float = 0.0  # beta at this step (VAE only)


def token_nll(
    logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean label-smoothed cross-entropy over real tokens, and the summed plain NLL.

    Label smoothing (Szegedy et al. 2016) mixes the one-hot target with a uniform distribution:
    ``(1 - eps) * NLL + eps * mean_v(-log p_v)``; the plain NLL is reported for perplexity.
    """
    # [B*T, V], [B*T]
    flat_logits, flat_targets = (
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
    )
    smoothed = F.cross_entropy(
        flat_logits, flat_targets, ignore_index=PAD_ID, label_smoothing=label_smoothing
    )
    with torch.no_grad():
        nll = F.cross_entropy(flat_logits, flat_targets, ignore_index=PAD_ID, reduction="sum")
    return smoothed, nll


def teacher_forced_report(logits: torch.Tensor, batch: Batch, label_smoothing: float) -> LossReport:
    """The report of a decoder read with teacher forcing (its logits [B, T, V] for the gold prefix
    ``batch.tgt_in``): the label-smoothed loss to minimise and the plain NLL of ``batch.tgt_out``
    (``token_nll``)."""
    loss, nll = token_nll(logits, batch.tgt_out, label_smoothing)
    return LossReport(loss, float(nll), batch.tgt_tokens, batch.size)


class Objective(ABC):
    """What a training run minimises: ``loss`` (abstract), and the ``corrupt`` step that turns a
    clean example into the model's input (the identity, unless an objective adds noise).

    ``uses_encoder`` is False for an objective whose loss never runs the encoder (a language
    model), so that DistributedDataParallel is told to expect its parameters to get no gradient.
    """

    name: str
    uses_encoder = True
    label_smoothing = 0.0  # of the target distribution (Szegedy et al. 2016); 0: none

    def corrupt(self, example: Example, rng: random.Random) -> Example:
        """The model's input for ``example`` (the identity), drawing any noise from ``rng``."""
        return example

    @abstractmethod
    def loss(self, model, batch: Batch, step: int = 0) -> LossReport:
        """The loss of ``model`` on ``batch`` at training step ``step`` (for schedules such as the
        VAE's KL weight), with its parts."""

    def describe(self) -> str:
        """One line that says what the objective is and how it is set."""
        return f"{self.name} (label smoothing {self.label_smoothing})"


class Translation(Objective):
    """Seq2seq translation: maximise log p(y | x) with teacher forcing (Sutskever et al. 2014;
    Vaswani et al. 2017), the target language given by the start tag, with label smoothing
    (Szegedy et al. 2016)."""

    name = "translation"

    def __init__(self, label_smoothing: float = 0.1):
        self.label_smoothing = label_smoothing

    def loss(self, model, batch: Batch, step: int = 0) -> LossReport:
        logits = model(batch.src, batch.tgt_in)  # [B, T, V]
        return teacher_forced_report(logits, batch, self.label_smoothing)


class Autoencoder(Translation):
    """Reconstruct the input: maximise log p(x | x~), with x~ = noise(x) (Vincent et al. 2008),
    i.e. translate the (corrupted) sentence into itself.

    With no noise this is the plain sequence autoencoder (Dai & Le 2015): with full attention over
    the source it can learn to copy. Noise (token masking, deletion, span infilling, local
    shuffling; BART, Lewis et al. 2020) forces it to model the language to undo the corruption.
    """

    name = "autoencoder"

    def __init__(
        self,
        noise: NoiseConfig = NoiseConfig.none(),
        tokenizer: Tokenizer | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__(label_smoothing)
        self.noise = noise
        noisy = noise != NoiseConfig.none()
        if noisy and tokenizer is None:
            raise ValueError(
                "a denoising autoencoder needs the tokenizer (for <mask> and word boundaries)"
            )
        self.name = "denoising autoencoder" if noisy else "autoencoder"
        self.mask_id = tokenizer.mask_id if tokenizer else None
        self.word_start = (
            [tokenizer.sp.id_to_piece(i).startswith("\u2581") for i in range(tokenizer.vocab_size)]
            if tokenizer
            else None
        )

    def corrupt(self, example: Example, rng: random.Random) -> Example:
        if self.mask_id is None or example.src is None:
            return example
        starts = [self.word_start[t] for t in example.src]
        noisy = apply_noise(example.src, self.noise, rng, self.mask_id, word_starts=starts)
        return replace(example, src=tuple(noisy))

    def describe(self) -> str:
        from .noise import describe

        return f"{self.name} ({describe(self.noise)})"


class LanguageModel(Objective):
    """A causal language model: the decoder alone maximises sum_t log p(x_t | x_<t).

    No source, no cross-attention. Ramachandran et al. (2017) initialise a translation decoder
    (and encoder) from such models.
    """

    name = "language model"
    uses_encoder = False

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, model, batch: Batch, step: int = 0) -> LossReport:
        logits = model.decode(batch.tgt_in)  # [B, T, V]
        return teacher_forced_report(logits, batch, self.label_smoothing)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(sigma^2)) || N(0, I)) per dimension, in closed form (Kingma & Welling 2014).

    KL = 1/2 * sum_d (mu_d^2 + sigma_d^2 - log sigma_d^2 - 1); returned unsummed, [B, L].
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample whose gradient flows to mu and sigma."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


KL_SCHEDULES = ("constant", "linear", "sigmoid", "cyclical")


@dataclass(frozen=True)
class KLSchedule:
    """The KL weight beta over training steps (Bowman et al. 2016; Fu et al. 2019 for cyclical).

    ``constant``: beta = max_beta. ``linear``: 0 -> max_beta over ``warmup_steps``.
    ``sigmoid``: a logistic ramp centred on warmup_steps / 2. ``cyclical``: the linear ramp over
    the first half of each cycle of ``cycle_steps``, then max_beta for the second half.
    """

    kind: str = "linear"
    max_beta: float = 1.0
    warmup_steps: int = 1000
    cycle_steps: int = 2000

    def __post_init__(self):
        if self.kind not in KL_SCHEDULES:
            raise ValueError(
                f"unknown KL schedule {self.kind!r}: use constant, linear, sigmoid or cyclical"
            )

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.max_beta
        if self.kind == "linear":
            return self.max_beta * min(1.0, step / max(1, self.warmup_steps))
        if self.kind == "sigmoid":
            return self.max_beta / (
                1.0 + math.exp(-10.0 * (step / max(1, self.warmup_steps) - 0.5))
            )
        phase = (step % self.cycle_steps) / self.cycle_steps
        return self.max_beta * min(1.0, 2.0 * phase)


class VAE(Objective):
    """Sentence VAE (Bowman et al. 2016) with the evidence lower bound

        ELBO(x) = E_{q(z|x)}[log p(x | z)] - beta * KL(q(z|x) || N(0, I))  <=  log p(x)

    and the loss -ELBO. q(z|x) is a diagonal Gaussian from the pooled encoder states; one z is
    drawn per sentence (reparameterisation trick) and the decoder reads it as a one-vector
    memory. Three remedies against posterior collapse, each switchable:
    KL annealing (``schedule``), free bits (Kingma et al. 2016: each latent dimension's KL,
    averaged over the batch, counts at least ``free_bits`` nats) and word dropout (Bowman et al.
    2016: decoder inputs replaced by <unk> with probability ``word_dropout``).

    In eval mode (validation) the decoder reads z = mu and no word is dropped: the reported NLL is
    then -log p(x | mu), a deterministic point estimate that is not the ELBO's expectation over
    q(z|x) (``tmtlib.vae_diagnostics`` estimates that with sampled z). Free bits and word dropout
    change what is optimised, so with them the training loss is not -ELBO either.
    """

    name = "variational autoencoder"

    def __init__(
        self, schedule: KLSchedule = KLSchedule(), free_bits: float = 0.0, word_dropout: float = 0.0
    ):
        self.schedule, self.free_bits, self.word_dropout = schedule, free_bits, word_dropout

    def loss(self, model, batch: Batch, step: int = 0) -> LossReport:
        memory, src_pad = model.encode(batch.src)  # [B, S, D], [B, S]
        mu, logvar = model.posterior(memory, src_pad)  # [B, L] each
        z = reparameterize(mu, logvar) if model.training else mu
        tgt_in = self._drop_words(batch.tgt_in) if model.training else batch.tgt_in
        logits = model.decode(tgt_in, model.latent_memory(z))  # [B, T, V]
        # -E_q[log p(x|z)], one sample
        nll_sum = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            batch.tgt_out.reshape(-1),
            ignore_index=PAD_ID,
            reduction="sum",
        )
        kl = gaussian_kl(mu, logvar)  # [B, L]
        kl_term = (
            kl.sum()
            if self.free_bits <= 0
            else kl.mean(0).clamp(min=self.free_bits).sum() * batch.size
        )
        beta = self.schedule(step)
        loss = (nll_sum + beta * kl_term) / batch.tgt_tokens
        return LossReport(
            loss,
            float(nll_sum.detach()),
            batch.tgt_tokens,
            batch.size,
            kl=float(kl.detach().sum()),
            kl_weight=beta,
        )

    def _drop_words(self, tgt_in: torch.Tensor) -> torch.Tensor:
        """Replace decoder inputs (not the start tag, not padding) by <unk> with prob
        word_dropout."""
        if self.word_dropout <= 0:
            return tgt_in
        drop = torch.rand(tgt_in.shape, device=tgt_in.device) < self.word_dropout
        drop[:, 0] = False
        return tgt_in.masked_fill(drop & (tgt_in != PAD_ID), UNK_ID)

    def describe(self) -> str:
        return (
            f"VAE (KL {self.schedule.kind} to beta={self.schedule.max_beta}, free bits "
            f"{self.free_bits}, word dropout {self.word_dropout})"
        )


OBJECTIVES = ("translation", "ae", "dae", "vae", "lm")


def make_objective(kind: str, tokenizer: Tokenizer | None = None, **options) -> Objective:
    """Build an objective by short name (the command line and recipes use these names)."""
    builders = {
        "translation": lambda: Translation(**options),
        "ae": lambda: Autoencoder(**options),
        "dae": lambda: Autoencoder(options.pop("noise", NoiseConfig.bart()), tokenizer, **options),
        "vae": lambda: VAE(**options),
        "lm": lambda: LanguageModel(**options),
    }
    if kind not in builders:
        raise ValueError(f"unknown objective {kind!r}: choose one of {', '.join(OBJECTIVES)}")
    return builders[kind]()


def translation_examples(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], tgt_lang: str, max_len: int = 256
) -> list[Example]:
    """Parallel pairs to examples; pairs with an empty side are dropped, long ones truncated."""
    start = tokenizer.lang_id(tgt_lang)
    sources = tokenizer.encode([s for s, _ in pairs])
    targets = tokenizer.encode([t for _, t in pairs])
    return [
        Example(tuple(s[: max_len - 1]), tuple(t[: max_len - 1]), start)
        for s, t in zip(sources, targets)
        if s and t
    ]


def monolingual_examples(
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    lang: str,
    *,
    with_source: bool = True,
    max_len: int = 256,
) -> list[Example]:
    """Sentences to reconstruction examples (source = target), or LM examples (no source)."""
    start = tokenizer.lang_id(lang)
    encoded = [tuple(ids[: max_len - 1]) for ids in tokenizer.encode(sentences) if ids]
    return [Example(ids if with_source else None, ids, start) for ids in encoded]
