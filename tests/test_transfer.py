"""Tests of tmtlib.transfer on tiny models (vocabulary 50): loading, refusals, freezing,
schedules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tmtlib.models import Seq2Seq, model_config
from tmtlib.transfer import (
    PARTS,
    GradualUnfreezing,
    TransferError,
    TransferReport,
    freeze,
    parameter_groups,
    part_of,
    trainable_summary,
    transfer,
    unfreeze,
)

VOCAB = 50


def tiny(seed: int = 0, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(model_config("tiny", vocab_size=VOCAB, **overrides))


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def names_in(model: torch.nn.Module, *parts: str) -> list[str]:
    return [name for name in model.state_dict() if part_of(name) in parts]


def numel(model: torch.nn.Module, *parts: str) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if part_of(name) in parts)


def train_steps(model: Seq2Seq, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    """A few teacher-forced steps on random token ids."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        src = torch.randint(1, VOCAB, (4, 7), generator=generator)
        tgt = torch.randint(1, VOCAB, (4, 6), generator=generator)
        logits = model(src, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


# --- part_of --------------------------------------------------------------------------------------


def test_part_of_covers_every_parameter_of_a_full_model():
    model = tiny(latent_dim=8, positions="learned")
    assert {part_of(name) for name in model.state_dict()} == set(PARTS)
    assert part_of("positions.table.weight") == "embeddings"
    assert part_of("decoder.layers.0.cross_attn.q.weight") == "cross_attention"
    assert part_of("decoder.layers.0.cross_norm.bias") == "cross_attention"
    assert part_of("decoder.layers.0.self_attn.qkv.weight") == "decoder"
    assert part_of("decoder.norm.weight") == "decoder"
    assert part_of("latent.to_mu.weight") == "latent"


@pytest.mark.parametrize("name", ["generator.weight", "module.embed.weight", ""])
def test_part_of_rejects_unknown_names(name):
    with pytest.raises(ValueError, match="no part"):
        part_of(name)


# --- transfer -------------------------------------------------------------------------------------


def test_identical_config_loads_everything():
    source, target = tiny(1, positions="learned"), tiny(2, positions="learned")
    report = transfer(target, source.state_dict())
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name
    assert report.loaded == list(target.state_dict())
    assert report.initialised == [] and report.ignored == []
    counts = report.by_part()
    assert list(counts) == ["embeddings", "encoder", "decoder", "cross_attention"]
    assert sum(row["loaded"] for row in counts.values()) == len(target.state_dict())
    assert sum(row["loaded_params"] for row in counts.values()) == target.num_parameters()
    assert counts["embeddings"]["loaded"] == 2  # embed.weight, positions.table.weight
    assert str(report) == report.summary()
    assert report.summary().splitlines()[0].split() == ["part", "loaded", "initialised", "ignored"]
    assert report.summary().splitlines()[-1].startswith("total")


def test_parts_subset_leaves_the_rest_initialised():
    source, target = tiny(1), tiny(2)
    initial = snapshot(target)
    report = transfer(target, source.state_dict(), parts=("embeddings", "encoder"))
    rest = names_in(target, "decoder", "cross_attention")
    for name in rest:
        assert torch.equal(target.state_dict()[name], initial[name]), name
    for name in names_in(target, "embeddings", "encoder"):
        assert torch.equal(target.state_dict()[name], source.state_dict()[name]), name
    assert report.initialised == rest
    assert report.ignored == rest
    assert report.loaded == names_in(target, "embeddings", "encoder")
    assert report.by_part()["decoder"]["initialised"] == report.by_part()["decoder"]["ignored"] > 0


def test_vae_heads_are_ignored_by_a_plain_translator():
    source, target = tiny(1, latent_dim=8), tiny(2)
    report = transfer(target, source.state_dict())
    assert report.ignored == names_in(source, "latent") and len(report.ignored) == 6
    assert report.initialised == []
    latent = report.by_part()["latent"]
    assert latent["ignored"] == 6 and latent["loaded"] == 0
    assert latent["ignored_params"] == numel(source, "latent")


def test_a_latent_part_can_be_selected():
    source, target = tiny(1, latent_dim=8), tiny(2, latent_dim=8)
    report = transfer(target, source.state_dict(), parts=PARTS)
    assert report.ignored == [] and report.initialised == []
    assert torch.equal(target.latent.to_mu.weight, source.latent.to_mu.weight)


def test_a_deeper_source_leaves_its_extra_layers_ignored():
    source, target = tiny(1, n_decoder_layers=2), tiny(2, n_decoder_layers=1)
    report = transfer(target, source.state_dict())
    assert report.initialised == []
    assert report.ignored and all(name.startswith("decoder.layers.1.") for name in report.ignored)
    assert torch.equal(
        target.decoder.layers[0].ff.fc1.weight, source.decoder.layers[0].ff.fc1.weight
    )
    assert torch.equal(target.decoder.norm.weight, source.decoder.norm.weight)


def test_a_shallower_source_leaves_the_extra_layers_initialised():
    source, target = tiny(1, n_decoder_layers=1), tiny(2, n_decoder_layers=2)
    initial = snapshot(target)
    report = transfer(target, source.state_dict())
    assert report.ignored == []
    assert report.initialised and all(
        name.startswith("decoder.layers.1.") for name in report.initialised
    )
    for name in report.initialised:
        assert torch.equal(target.state_dict()[name], initial[name]), name
    assert {part_of(name) for name in report.initialised} == {"decoder", "cross_attention"}


def test_vocabulary_size_mismatch_names_both_sizes():
    torch.manual_seed(1)
    source = Seq2Seq(model_config("tiny", vocab_size=60))
    target = tiny(2)
    initial = snapshot(target)
    with pytest.raises(TransferError, match=r"vocabulary.*60.*50"):
        transfer(target, source.state_dict())
    assert all(torch.equal(target.state_dict()[name], t) for name, t in initial.items())


def test_vocabulary_size_may_differ_when_embeddings_are_not_moved():
    torch.manual_seed(1)
    source = Seq2Seq(model_config("tiny", vocab_size=60))
    report = transfer(tiny(2), source.state_dict(), parts=("encoder",))
    assert report.loaded == names_in(source, "encoder")


def checkpoint(model: Seq2Seq, tokenizer: str | None) -> dict:
    return {
        "model": model.state_dict(),
        "model_config": vars(model.config).copy(),
        "tokenizer": tokenizer,
    }


def test_tokenizer_fingerprint_mismatch_is_refused():
    source = checkpoint(tiny(1), "0123456789abcdef")
    with pytest.raises(TransferError, match="0123456789abcdef.*fedcba9876543210"):
        transfer(tiny(2), source, tokenizer_fingerprint="fedcba9876543210")


@pytest.mark.parametrize(
    "fingerprints",
    [
        ("0123456789abcdef", "0123456789abcdef"),
        (None, "0123456789abcdef"),
        ("0123456789abcdef", None),
    ],
)
def test_matching_or_unknown_fingerprints_are_accepted(fingerprints):
    saved, current = fingerprints
    report = transfer(tiny(2), checkpoint(tiny(1), saved), tokenizer_fingerprint=current)
    assert report.ignored == [] and report.initialised == []


def test_shape_mismatch_names_the_tensor_and_both_shapes():
    source, target = tiny(1, d_ff=128), tiny(2, d_ff=64)
    initial = snapshot(target)
    with pytest.raises(TransferError) as error:
        transfer(target, source.state_dict())
    message = str(error.value)
    assert "encoder.layers.0.ff.fc1.weight: source (128, 32) vs model (64, 32)" in message
    assert "d_ff" in message
    # nothing was copied, not even the compatible embedding
    assert all(torch.equal(target.state_dict()[name], t) for name, t in initial.items())


def test_unknown_parts_are_refused_with_the_valid_ones():
    with pytest.raises(TransferError, match="'encoders'.*embeddings, encoder, decoder"):
        transfer(tiny(2), tiny(1).state_dict(), parts=("encoders",))


def test_a_model_can_be_the_source():
    source, target = tiny(1), tiny(2)
    transfer(target, source, parts=("encoder",))
    assert torch.equal(
        target.encoder.layers[0].ff.fc1.weight, source.encoder.layers[0].ff.fc1.weight
    )


def test_a_source_from_another_model_family_is_refused():
    with pytest.raises(TransferError, match="generator.weight"):
        transfer(tiny(2), {"generator.weight": torch.zeros(3, 3)})


def test_loading_from_a_file_leaves_the_checkpoint_untouched(tmp_path):
    source = tiny(1)
    saved = checkpoint(source, "0123456789abcdef")
    path = tmp_path / "parent.pt"
    torch.save(saved, path)
    target = tiny(2)
    report = transfer(target, path, tokenizer_fingerprint="0123456789abcdef")
    assert report.loaded == list(target.state_dict())
    assert torch.equal(target.embed.weight, source.embed.weight)

    before = {name: tensor.clone() for name, tensor in saved["model"].items()}
    transfer(target, saved)
    with torch.no_grad():
        target.embed.weight.add_(1.0)  # the model owns its copy, it does not alias the source
    assert set(saved) == {"model", "model_config", "tokenizer"}
    assert all(torch.equal(saved["model"][name], t) for name, t in before.items())


def test_a_corrupted_file_is_refused_clearly(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(
        torch.randint(
            0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
        )
        .numpy()
        .tobytes()
    )
    with pytest.raises(TransferError, match="broken.pt.*corrupted") as error:
        transfer(tiny(2), path)
    assert error.value.__suppress_context__


def test_a_missing_file_is_refused_clearly(tmp_path):
    with pytest.raises(TransferError, match="does not exist"):
        transfer(tiny(2), tmp_path / "nowhere.pt")


def test_a_report_is_a_plain_dataclass():
    report = TransferReport(loaded=["embed.weight"], sizes={"embed.weight": 1_600_000})
    assert report.by_part() == {
        "embeddings": {
            "loaded": 1,
            "initialised": 0,
            "ignored": 0,
            "loaded_params": 1_600_000,
            "initialised_params": 0,
            "ignored_params": 0,
        }
    }
    assert "1 (1.60M)" in report.summary()


# --- freezing and parameter groups ----------------------------------------------------------------


def test_freeze_and_unfreeze_count_and_flag_parameters():
    model = tiny(latent_dim=8)
    encoder = numel(model, "encoder")
    assert freeze(model, ["encoder"]) == encoder
    assert all(not p.requires_grad for n, p in model.named_parameters() if part_of(n) == "encoder")
    assert all(p.requires_grad for n, p in model.named_parameters() if part_of(n) != "encoder")
    summary = trainable_summary(model)
    assert summary["encoder"] == (0, encoder)
    assert summary["decoder"][0] == summary["decoder"][1] > 0
    assert list(summary) == list(PARTS)
    assert unfreeze(model, "encoder") == encoder  # a single name is one part
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="unknown part"):
        freeze(model, ["encoder", "attention"])


def test_freezing_embeddings_freezes_the_tied_output_projection():
    model = tiny()
    freeze(model, ["embeddings"])
    assert trainable_summary(model)["embeddings"][0] == 0
    before = model.embed.weight.detach().clone()
    train_steps(model, torch.optim.AdamW(parameter_groups(model, lr=1e-2)), steps=2)
    assert model.embed.weight.grad is None
    assert torch.equal(model.embed.weight, before)
    # the output projection is that same matrix: no other [V, D] parameter exists
    assert [n for n, p in model.named_parameters() if p.shape[0] == VOCAB] == ["embed.weight"]


def test_parameter_groups_cover_each_trainable_parameter_once():
    model = tiny(latent_dim=8, positions="learned")
    freeze(model, ["latent"])
    groups = parameter_groups(
        model, lr=1e-3, part_lrs={"embeddings": 1e-4, "encoder": 3e-4}, weight_decay=0.1
    )
    grouped = [id(p) for group in groups for p in group["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable) and len(set(grouped)) == len(grouped)
    expected = {"embeddings": 1e-4, "encoder": 3e-4, "decoder": 1e-3, "cross_attention": 1e-3}
    assert {group["name"]: group["lr"] for group in groups} == expected
    for group in groups:
        one_d = all(p.ndim == 1 for p in group["params"])
        assert group["weight_decay"] == (0.0 if one_d else 0.1)
        assert one_d or all(p.ndim >= 2 for p in group["params"])
    everything = parameter_groups(model, lr=1e-3, include_frozen=True)
    assert sum(len(group["params"]) for group in everything) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="unknown part"):
        parameter_groups(model, lr=1e-3, part_lrs={"encodr": 1e-4})


def test_a_frozen_encoder_stays_bit_identical_while_the_decoder_learns():
    model = tiny()
    freeze(model, ["encoder"])
    before = snapshot(model)
    optimizer = torch.optim.AdamW(parameter_groups(model, lr=1e-2, include_frozen=True))
    train_steps(model, optimizer)
    after = model.state_dict()
    for name in names_in(model, "encoder"):
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(
        after["decoder.layers.0.ff.fc1.weight"], before["decoder.layers.0.ff.fc1.weight"]
    )
    assert not torch.equal(after["embed.weight"], before["embed.weight"])


def test_gradual_unfreezing_follows_its_schedule():
    model = tiny()
    schedule = GradualUnfreezing(
        [(4, ["embeddings", "encoder"]), (2, ["decoder", "cross_attention"])]
    )
    assert schedule.initial(model) == numel(model, *PARTS)
    assert trainable_summary(model)["encoder"][0] == 0
    optimizer = torch.optim.AdamW(parameter_groups(model, lr=1e-2, include_frozen=True))
    assert schedule.on_step(1, model) == []
    assert schedule.on_step(2, model) == ["decoder", "cross_attention"]
    assert schedule.on_step(3, model) == []
    before = snapshot(model)
    train_steps(model, optimizer, steps=1)
    after = model.state_dict()
    assert not torch.equal(
        after["decoder.layers.0.ff.fc1.weight"], before["decoder.layers.0.ff.fc1.weight"]
    )
    assert torch.equal(
        after["encoder.layers.0.ff.fc1.weight"], before["encoder.layers.0.ff.fc1.weight"]
    )

    assert schedule.on_step(4, model) == ["embeddings", "encoder"]
    assert all(p.requires_grad for p in model.parameters())
    before = snapshot(model)
    train_steps(model, optimizer, steps=1)
    assert not torch.equal(
        model.encoder.layers[0].ff.fc1.weight, before["encoder.layers.0.ff.fc1.weight"]
    )
    assert schedule.on_step(5, model) == []


def test_gradual_unfreezing_catches_up_after_a_resume_and_rejects_repeats():
    model = tiny()
    schedule = GradualUnfreezing([(2, "decoder"), (4, ["encoder"])])
    schedule.initial(model)
    assert schedule.on_step(10, model) == ["decoder", "encoder"]
    assert trainable_summary(model)["encoder"] == (numel(model, "encoder"),) * 2
    with pytest.raises(ValueError, match="more than once"):
        GradualUnfreezing([(2, ["decoder"]), (4, ["decoder"])])
