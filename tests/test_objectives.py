"""Objectives: the Gaussian KL, KL schedules, free bits, word dropout, and overfitting each loss."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from tmtlib.batching import Example, collate
from tmtlib.models import Seq2Seq, model_config
from tmtlib.noise import NoiseConfig
from tmtlib.objectives import (
    VAE,
    Autoencoder,
    KLSchedule,
    LanguageModel,
    Translation,
    gaussian_kl,
    make_objective,
    monolingual_examples,
    reparameterize,
    token_nll,
    translation_examples,
)
from tmtlib.subwords import PAD_ID, UNK_ID

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer(toy_tokenizer):
    """A vocabulary of the course's kind is all these tests need: the toy corpus's."""
    return toy_tokenizer


def test_analytic_kl_equals_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4) * 0.5
    analytic = gaussian_kl(mu, logvar).sum(-1)  # [3]
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 3, 4)
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    monte_carlo = (log_q - log_p).mean(0)
    torch.testing.assert_close(monte_carlo, analytic, atol=0.03, rtol=0.01)
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


def test_reparameterisation_passes_gradients():
    mu, logvar = torch.zeros(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    reparameterize(mu, logvar).sum().backward()
    assert torch.all(mu.grad == 1) and logvar.grad.abs().sum() > 0


def test_kl_schedules():
    linear = KLSchedule("linear", max_beta=2.0, warmup_steps=100)
    assert (linear(0), linear(50), linear(100), linear(1000)) == (0.0, 1.0, 2.0, 2.0)
    sigmoid = KLSchedule("sigmoid", warmup_steps=100)
    assert sigmoid(50) == pytest.approx(0.5) and sigmoid(0) < 0.01 and sigmoid(100) > 0.99
    cyclical = KLSchedule("cyclical", warmup_steps=0, cycle_steps=100)
    assert (cyclical(0), cyclical(25), cyclical(60), cyclical(100)) == (0.0, 0.5, 1.0, 0.0)
    assert KLSchedule("constant", max_beta=0.3)(7) == 0.3
    with pytest.raises(ValueError, match="unknown KL schedule"):
        KLSchedule("step")


def test_label_smoothing_and_padding():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 3, 7), torch.tensor([[4, 5, PAD_ID], [6, PAD_ID, PAD_ID]])
    mean, total = token_nll(logits, targets)
    real = targets != PAD_ID
    expected = F.cross_entropy(logits[real], targets[real], reduction="sum")
    assert total == pytest.approx(float(expected), rel=1e-5) and mean == pytest.approx(
        float(expected) / 3, rel=1e-5
    )
    smoothed, same_total = token_nll(logits, targets, label_smoothing=0.1)
    assert smoothed != mean and same_total == pytest.approx(float(total))


def data(n: int = 24, lm: bool = False) -> list[Example]:
    rng = random.Random(0)
    seqs = [tuple(rng.randrange(10, 30) for _ in range(rng.randrange(3, 8))) for _ in range(n)]
    return [Example(None if lm else s, s, 4) for s in seqs]


def overfit(objective, examples, latent: int = 0, steps: int = 250) -> tuple[float, float]:
    """Train a tiny model on one batch; return (first, last) per-token NLL."""
    torch.manual_seed(0)
    model = Seq2Seq(model_config("tiny", vocab_size=32, d_model=64, d_ff=128, latent_dim=latent))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = collate(examples)
    first = None
    for step in range(steps):
        report = objective.loss(model, batch, step)
        optimizer.zero_grad()
        report.loss.backward()
        optimizer.step()
        first = first if first is not None else report.nll / report.tokens
    model.eval()
    return first, objective.loss(model, batch, steps).nll / batch.tgt_tokens


@pytest.mark.parametrize(
    "objective, lm, latent",
    [
        (Translation(label_smoothing=0.0), False, 0),
        (Autoencoder(), False, 0),
        (LanguageModel(), True, 0),
        (VAE(KLSchedule("constant", max_beta=0.0)), False, 16),
    ],
)
def test_each_objective_overfits_a_small_batch(objective, lm, latent):
    first, last = overfit(objective, data(lm=lm), latent)
    assert first > 2.5
    # an LM cannot know which of 24 random sentences comes next after the start tag,
    # so its floor is about log(24)/len; the others reach near zero
    assert last < (0.7 if lm else 0.05), (objective.name, last)


def test_denoising_objective_overfits_with_noise(tokenizer):
    lines = ["a dog runs on the grass", "two men play music", "a girl in a red coat reads"]
    examples = monolingual_examples(tokenizer, lines, "en")
    objective = Autoencoder(NoiseConfig(mask_p=0.2, shuffle_k=2), tokenizer)
    rng = random.Random(1)
    corrupted = [objective.corrupt(e, rng) for e in examples]
    assert any(c.src != e.src for c, e in zip(corrupted, examples))
    assert all(c.tgt == e.tgt for c, e in zip(corrupted, examples))
    assert objective.corrupt(examples[0], random.Random(5)) == objective.corrupt(
        examples[0], random.Random(5)
    )
    torch.manual_seed(0)
    model = Seq2Seq(model_config("tiny", vocab_size=tokenizer.vocab_size, d_model=64, d_ff=128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(200):
        batch = collate([objective.corrupt(e, rng) for e in examples])
        loss = objective.loss(model, batch, step).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    clean = collate([objective.corrupt(e, rng) for e in examples])
    assert objective.loss(model, clean).nll / clean.tgt_tokens < 0.1


def test_free_bits_floor_the_kl_term():
    torch.manual_seed(0)
    model = Seq2Seq(model_config("tiny", vocab_size=32, latent_dim=4))
    batch = collate(data(8))
    plain = VAE(KLSchedule("constant", max_beta=1.0))
    floored = VAE(KLSchedule("constant", max_beta=1.0), free_bits=5.0)
    model.eval()  # z = mu, no word dropout: the two losses differ only in the KL term
    a, b = plain.loss(model, batch), floored.loss(model, batch)
    assert a.kl == pytest.approx(b.kl)
    assert b.kl < 5.0 * 4 * 8  # the true KL is below the floor here...
    expected = (a.loss * batch.tgt_tokens - a.kl + 5.0 * 4 * 8) / batch.tgt_tokens
    # ...so the floor counts instead
    assert float(b.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_word_dropout_replaces_only_real_non_start_tokens():
    vae = VAE(word_dropout=1.0)
    tgt_in = torch.tensor([[4, 10, 11, PAD_ID], [4, 12, PAD_ID, PAD_ID]])
    dropped = vae._drop_words(tgt_in)
    assert dropped.tolist() == [[4, UNK_ID, UNK_ID, PAD_ID], [4, UNK_ID, PAD_ID, PAD_ID]]
    assert torch.equal(VAE(word_dropout=0.0)._drop_words(tgt_in), tgt_in)


def test_make_objective_and_examples(tokenizer):
    assert make_objective("dae", tokenizer).name == "denoising autoencoder"
    assert make_objective("ae").name == "autoencoder"
    assert not make_objective("lm").uses_encoder
    with pytest.raises(ValueError, match="unknown objective"):
        make_objective("gan")
    with pytest.raises(ValueError, match="needs the tokenizer"):
        Autoencoder(NoiseConfig.bart())
    pairs = [("A dog.", "Ein Hund."), ("", "Leer."), ("Long " * 400, "Lang " * 400)]
    examples = translation_examples(tokenizer, pairs, "de", max_len=64)
    assert len(examples) == 2 and examples[0].start_id == tokenizer.lang_id("de")
    assert max(len(examples[1].src), len(examples[1].tgt)) == 63
    mono = monolingual_examples(tokenizer, ["A dog.", ""], "en", with_source=False)
    assert len(mono) == 1 and mono[0].src is None and not math.isnan(mono[0].size)


def test_the_vae_trains_only_the_value_and_output_of_its_cross_attention():
    """Over the VAE's one-vector memory the attention softmax is 1 whatever the query and key, so
    their projections get no true gradient, only float rounding (notebooks 03 and 05 say so); values
    and output do learn."""
    torch.manual_seed(0)
    model = Seq2Seq(model_config("tiny", vocab_size=32, d_model=64, d_ff=128, latent_dim=16))
    VAE(KLSchedule("constant", max_beta=1.0)).loss(model, collate(data()), 0).loss.backward()
    d = model.config.d_model
    for layer in model.decoder.layers:
        cross = layer.cross_attn
        learning = min(
            float(cross.kv.weight.grad[d:].abs().max()), float(cross.out.weight.grad.abs().max())
        )
        untrained = [
            cross.q.weight.grad,
            cross.q.bias.grad,
            cross.kv.weight.grad[:d],
            cross.kv.bias.grad[:d],
        ]
        assert learning > 1e-4 and max(float(g.abs().max()) for g in untrained) < 1e-6 * learning
