"""VAE diagnostics: the bounds, active units, mutual information, shuffled codes and the gradients
of cross-attention over a one-vector memory, on tiny models whose answers are known."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from tmtlib import vae_diagnostics as vd
from tmtlib.batching import Example, collate
from tmtlib.models import Seq2Seq, model_config
from tmtlib.objectives import VAE, KLSchedule, Translation

pytestmark = pytest.mark.usefixtures("one_thread")


def sentences(count: int = 24, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    return [
        Example(ids, ids, 2)
        for ids in (
            tuple(rng.randrange(5, 40) for _ in range(rng.randrange(3, 8))) for _ in range(count)
        )
    ]


def vae_model(seed: int = 0, latent_dim: int = 4) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(model_config("tiny", 40, latent_dim=latent_dim)).eval()


def collapsed(model: Seq2Seq) -> Seq2Seq:
    """q(z|x) = p(z) for every x, and a decoder that ignores z (its memory is always zero)."""
    with torch.no_grad():
        for layer in (model.latent.to_mu, model.latent.to_logvar, model.latent.to_memory):
            layer.weight.zero_()
            layer.bias.zero_()
    return model


def trained_to_read_z(examples: list[Example], steps: int = 150) -> Seq2Seq:
    """A tiny VAE trained with beta = 0: an autoencoder through z, whose decoder must read it."""
    model = vae_model(latent_dim=8)
    model.train()
    objective, batch = VAE(KLSchedule("constant", max_beta=0.0)), collate(examples)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        optimiser.zero_grad()
        objective.loss(model, batch).loss.backward()
        optimiser.step()
    return model.eval()


def test_collapsed_vae_every_bound_is_the_exact_likelihood():
    """q = p(z) and a decoder that ignores z: log w = log p(x) for every sample, so the ELBO and
    every importance-weighted bound are equal, KL is 0, no unit is active and shuffling changes
    nothing."""
    examples = sentences()
    model = collapsed(vae_model())
    draws = vd.latent_samples(model, examples, samples=20)
    result = vd.elbo(draws)
    assert result["kl"] == 0.0
    for k in (1, 5, 20):
        assert vd.importance_weighted_nll(draws, k) == pytest.approx(result["neg_elbo"], rel=1e-5)
    mu, logvar = vd.posteriors(model, examples)
    assert vd.active_units(mu) == 0
    assert abs(vd.mutual_information(mu, logvar, samples=50)) < 0.05
    shuffled = vd.shuffled_latents(model, examples, mu + torch.randn(mu.shape))
    assert shuffled["gap"] == pytest.approx(0.0, abs=1e-6)


def test_importance_weighting_tightens_the_bound():
    """Burda et al. 2016: L_1 is the ELBO (in expectation) and L_k rises with k, so -L_k falls."""
    draws = vd.latent_samples(vae_model(), sentences(), samples=200)
    neg = {k: vd.importance_weighted_nll(draws, k) for k in (1, 10, 100)}
    assert neg[1] == pytest.approx(vd.elbo(draws)["neg_elbo"], abs=0.02)
    assert neg[1] > neg[10] > neg[100]
    with pytest.raises(ValueError, match="needs at least"):
        vd.importance_weighted_nll(draws, 201)


def test_active_units_count_what_moves_with_the_sentence():
    examples = sentences()
    model = vae_model()
    # posterior means whose variances over the sentences are 0, 0.05**2 and 5.25 (Burda et al.'s
    # threshold: 0.01)
    wobble = 0.05 * torch.tensor([1.0, -1.0] * 4)
    designed = torch.stack([torch.zeros(8), wobble, torch.arange(8.0)], dim=1)  # [8 sentences, 3]
    assert vd.active_units(designed) == 1 and vd.active_units(designed, threshold=0.001) == 2
    mu, _ = vd.posteriors(model, examples)
    variances = mu.numpy().var(axis=0)  # a random model's means
    assert vd.active_units(mu) == (variances > 0.01).sum() > 0
    with torch.no_grad():  # an encoder that ignores x: a large KL, but nothing active
        model.latent.to_mu.weight.zero_()
        model.latent.to_mu.bias.fill_(2.0)
    mu, logvar = vd.posteriors(model, examples)
    assert vd.active_units(mu) == 0 and vd.elbo(vd.latent_samples(model, examples, 2))["kl"] > 0.1


def test_mutual_information_is_bounded_by_the_kl_and_by_log_n():
    n, dims = 8, 3
    separated = torch.zeros(n, dims)
    separated[:, 0] = 20.0 * torch.arange(n)  # far apart, narrow posteriors: z identifies x
    narrow = torch.full((n, dims), -8.0)
    assert vd.mutual_information(separated, narrow) == pytest.approx(math.log(n), abs=1e-3)
    torch.manual_seed(0)
    mu, logvar = torch.randn(64, dims), torch.randn(64, dims) * 0.3 - 1.0
    mean_kl = float(vd.gaussian_kl(mu, logvar).sum(-1).mean())
    assert 0.0 < vd.mutual_information(mu, logvar, samples=50) < mean_kl


def test_derangement_moves_every_sentence():
    for n in (2, 3, 17):
        partner = vd.derangement(n, seed=n)
        assert sorted(partner.tolist()) == list(range(n)) and bool(
            (partner != torch.arange(n)).all()
        )


def test_a_decoder_that_reads_z_is_hurt_by_another_sentence_s_z():
    examples = sentences(8)
    model = trained_to_read_z(examples)
    mu, _ = vd.posteriors(model, examples)
    shuffled = vd.shuffled_latents(model, examples, mu)
    assert shuffled["gap"] > 0.5 and vd.active_units(mu) > 0


def test_cross_attention_over_one_vector_gives_query_and_key_no_gradient():
    examples = sentences(8)
    latent = vd.cross_attention_gradients(vae_model(), VAE(), examples)
    assert latent["value"] > 1e-3 and latent["output"] > 1e-3
    assert latent["query"] < 1e-6 * latent["value"] and latent["key"] < 1e-6 * latent["value"]
    encoder_states = vd.cross_attention_gradients(vae_model(), Translation(), examples)
    assert min(encoder_states.values()) > 1e-3  # over many source states every projection learns


def test_vae_diagnostics_family_records_each_vae(corpus, tmp_path, capsys):
    from tmtlib.cli import main

    out = tmp_path / "results"
    assert (
        main(["experiment", "vae-diagnostics", "--runs", "vae_no_remedy", "--out", str(out)]) == 0
    )
    assert "| vae_no_remedy |" in capsys.readouterr().out
    folder = out / "pretraining"
    record = json.loads((folder / "vae_diagnostics.json").read_text())["runs"]["vae_no_remedy"]
    bound = record["importance_weighted"]
    assert record["sentences"] == 500 and bound["sentences"] == 20 and record["latent_dim"] > 0
    assert (
        bound["nll_bound"]["5"] < bound["nll_bound"]["1"]
        and 0 <= record["active_units"] <= record["latent_dim"]
    )
    assert "IW bound, k=5" in (folder / "summary.md").read_text()
    assert main(["experiment", "vae-diagnostics", "--seeds", "1"]) == 2
    assert "does not take --seeds" in capsys.readouterr().err


def test_training_on_one_memory_vector_leaves_query_and_key_where_they_started():
    examples = sentences(8)
    initial = vae_model(latent_dim=8)
    change = vd.cross_attention_change(trained_to_read_z(examples, steps=20), initial)
    # their gradient is rounding noise (~1e-8), which Adam's per-coordinate scaling turns into small
    # random steps
    assert change["value"] > 0.05 and change["output"] > 0.05
    assert change["query"] < 0.1 * change["value"] and change["key"] < 0.1 * change["value"]


PRETRAINING_RESULTS = Path(__file__).resolve().parents[1] / "data" / "results" / "pretraining"


def test_committed_vae_measurements_hold_what_the_course_says():
    """The recorded measurements are of the committed runs, consistent, and say what notebook 2
    says."""
    runs = json.loads((PRETRAINING_RESULTS / "vae_diagnostics.json").read_text())["runs"]
    summary = (PRETRAINING_RESULTS / "summary.md").read_text()
    for name, record in runs.items():
        trained = json.loads((PRETRAINING_RESULTS / f"{name}.json").read_text())
        assert record["run_folder"] == trained["run_folder"] and f"| {name} |" in summary
        # the same weights as in training
        if record["checkpoint_step"] == trained["final_validation"]["step"]:
            assert record["reconstruction_at_mean"] == pytest.approx(
                trained["final_validation"]["val_nll"], abs=1e-4
            )
        bound = record["importance_weighted"]["nll_bound"]
        assert (
            record["importance_weighted"]["samples"] >= 50
            and bound["50"] <= bound["10"] <= bound["1"]
        )
        assert record["neg_elbo"] == pytest.approx(record["reconstruction"] + record["kl"])
        assert record["mutual_information"] <= min(
            math.log(record["sentences"]), record["kl_per_sentence"]
        )
        gradients = record["cross_attention_gradient_norm"]
        assert max(gradients["query"], gradients["key"]) < 1e-4 * min(
            gradients["value"], gradients["output"]
        )
    remedied = runs["vae_all_remedies"]
    assert remedied["shuffled_z"]["gap"] > 0.05 and remedied["active_units"] > 0
    # sampled z decodes worse than the mean
    assert remedied["reconstruction"] > remedied["reconstruction_at_mean"]
    if "vae_no_remedy" in runs:
        collapsed = runs["vae_no_remedy"]
        assert collapsed["active_units"] == 0 and abs(collapsed["shuffled_z"]["gap"]) < 0.01
