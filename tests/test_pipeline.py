"""Pipeline: cached runs are trained once, then loaded; specs round-trip through config.json.
Runs train on the toy corpus; the paraphrase data's sizes are checked on the real one (slow)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest
import torch

from tmtlib import checkpoint, pipeline
from tmtlib.train import TrainConfig
from tmtlib.transfer import part_of

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer(toy_tokenizer):
    """The runs here train on the toy corpus, with its vocabulary."""
    return toy_tokenizer


def test_cached_run_trains_once_then_loads(toy_corpus, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("TMT_HOME", str(tmp_path))
    spec = pipeline.PretrainSpec(
        objective="lm",
        langs=("en",),
        preset="tiny",
        sentences_per_lang=300,
        train=TrainConfig(max_steps=6, eval_every=3, max_tokens=1024, progress=False),
    )
    model, history, folder = pipeline.cached_run(spec, tokenizer)
    assert (
        folder.parent == tmp_path / "cache" / "runs" and checkpoint.RunFolder(folder).is_finished()
    )
    stamp = (folder / "last.pt").stat().st_mtime_ns
    again, history_again, same = pipeline.cached_run(spec, tokenizer)
    assert same == folder and (folder / "last.pt").stat().st_mtime_ns == stamp
    assert history_again.evals == history.evals
    assert all(
        (a == b).all() for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    longer = replace(spec, train=replace(spec.train, max_steps=7))
    assert pipeline.runs_dir() / f"pretrain-{pipeline.spec_hash(longer)}" != folder


def test_spec_round_trips_through_config_json(tmp_path):
    spec = pipeline.FinetuneSpec(
        src="en",
        tgt="fr",
        pairs=1000,
        parts=("encoder",),
        train=TrainConfig(betas=(0.9, 0.99), select="val_bleu"),
    )
    raw = json.loads(json.dumps(pipeline.spec_dict(spec)))
    assert pipeline.spec_from_dict(pipeline.FinetuneSpec, raw) == spec
    with pytest.raises(ValueError, match="unknown FinetuneSpec settings: colour"):
        pipeline.spec_from_dict(pipeline.FinetuneSpec, {**raw, "colour": "red"})


def test_later_settings_at_their_defaults_keep_old_run_names():
    spec = pipeline.FinetuneSpec(pairs=1000)
    assert "task" not in pipeline.spec_dict(spec) and "strategy" not in pipeline.spec_dict(spec)
    gradual = replace(spec, strategy="gradual")
    assert pipeline.spec_dict(gradual)["strategy"] == "gradual"
    assert pipeline.spec_hash(gradual) != pipeline.spec_hash(spec)
    raw = json.loads(json.dumps(pipeline.spec_dict(gradual)))
    assert pipeline.spec_from_dict(pipeline.FinetuneSpec, raw) == gradual


@pytest.mark.parametrize("kind", [pipeline.FinetuneSpec, pipeline.PretrainSpec])
def test_a_run_may_set_its_own_dropout_and_keeps_its_name_when_it_does_not(kind):
    spec = kind(preset="small")
    assert "dropout" not in pipeline.spec_dict(spec)
    tokenizer = type("Vocabulary", (), {"vocab_size": 100})()
    assert pipeline.spec_model_config(spec, tokenizer).dropout == 0.1  # the small preset's
    no_dropout = replace(spec, dropout=0.0)
    assert pipeline.spec_model_config(no_dropout, tokenizer).dropout == 0.0
    assert pipeline.spec_hash(no_dropout) != pipeline.spec_hash(spec)
    with pytest.raises(ValueError, match="dropout"):
        kind(dropout=1.0)


def test_a_run_has_the_same_name_wherever_the_repository_and_its_data_live(tmp_path, monkeypatch):
    names = []
    for home in ("one", "two"):
        monkeypatch.setenv("TMT_HOME", str(tmp_path / home))
        init = pipeline.runs_dir() / "pretrain-0123456789ab" / "best.pt"
        spec = pipeline.FinetuneSpec(pairs=1000, init=str(init))
        names.append(pipeline.spec_hash(spec))
        assert pipeline.hashed_settings(spec)["init"] == "runs/pretrain-0123456789ab/best.pt"
    assert names[0] == names[1]
    other = pipeline.runs_dir() / "pretrain-ba9876543210" / "best.pt"
    assert pipeline.spec_hash(pipeline.FinetuneSpec(pairs=1000, init=str(other))) != names[0]


def test_a_checkpoint_outside_the_run_cache_is_named_by_its_content(tmp_path, monkeypatch):
    monkeypatch.setenv("TMT_HOME", str(tmp_path / "home"))
    here, there = tmp_path / "here.pt", tmp_path / "elsewhere" / "copy.pt"
    there.parent.mkdir()
    here.write_bytes(b"weights")
    there.write_bytes(b"weights")
    name = pipeline.spec_hash(pipeline.FinetuneSpec(init=str(here)))
    assert name == pipeline.spec_hash(pipeline.FinetuneSpec(init=str(there)))
    here.write_bytes(b"other weights")
    assert pipeline.spec_hash(pipeline.FinetuneSpec(init=str(here))) != name
    with pytest.raises(pipeline.checkpoint.CheckpointError, match="cannot read the starting"):
        pipeline.spec_hash(pipeline.FinetuneSpec(init=str(tmp_path / "missing.pt")))


@pytest.mark.parametrize(
    "change",
    [
        {"label_smoothing": 0.0},
        {"strategy": "freeze_encoder"},
        {"parts": ("encoder",)},
        {"bleu_sentences": 100},
        {"subset_seed": 1},
        {"train": TrainConfig(select="val_bleu", lr=1e-4)},
    ],
)
def test_every_fine_tuning_setting_changes_the_run_name(change):
    spec = pipeline.FinetuneSpec(pairs=1000)
    assert pipeline.spec_hash(replace(spec, **change)) != pipeline.spec_hash(spec)


class OtherVocabulary:
    """Stands in for a tokenizer that is not the course's (only its fingerprint is hashed)."""

    def fingerprint(self) -> str:
        return "0123456789abcdef"


def test_another_vocabulary_changes_the_run_name_and_the_courses_adds_nothing(tokenizer):
    spec = pipeline.FinetuneSpec(pairs=1000)
    assert pipeline.spec_hash(spec, tokenizer) == pipeline.spec_hash(spec)
    assert pipeline.spec_hash(spec, OtherVocabulary()) != pipeline.spec_hash(spec)
    assert pipeline.hashed_settings(spec, OtherVocabulary())["tokenizer"] == "0123456789abcdef"


def test_pretraining_can_continue_from_another_model(toy_corpus, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("TMT_HOME", str(tmp_path))
    lm = pipeline.PretrainSpec(
        objective="lm",
        langs=("en",),
        preset="tiny",
        sentences_per_lang=300,
        train=TrainConfig(max_steps=6, eval_every=3, max_tokens=1024, progress=False),
    )
    # runs cached before ``init`` existed keep their names
    assert "init" not in pipeline.spec_dict(lm)
    _, _, lm_folder = pipeline.cached_run(lm, tokenizer)
    tiny_step = replace(lm.train, max_steps=1, lr=1e-12)
    continued = replace(lm, objective="dae", init=str(lm_folder / "best.pt"), train=tiny_step)
    model, _, folder = pipeline.cached_run(continued, tokenizer)
    assert folder != lm_folder
    assert json.loads((folder / "config.json").read_text())["init"] == str(lm_folder / "best.pt")
    start = pipeline.load(lm_folder / "best.pt")[0].state_dict()
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(weight, start[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"task": "summarise"}, "unknown task"),
        ({"strategy": "lottery"}, "unknown strategy"),
        ({"task": "paraphrase"}, "src == tgt"),
        ({"src": "en", "tgt": "en"}, "src == tgt"),
    ],
)
def test_finetune_spec_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        pipeline.FinetuneSpec(**settings)


def _trainable(model, prefix: str) -> set[bool]:
    return {p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix)}


def test_fine_tuning_strategies_freeze_and_set_learning_rates():
    from tmtlib.models import Seq2Seq, model_config

    config = TrainConfig(max_steps=100, lr=1e-3)
    fresh = lambda: Seq2Seq(model_config("tiny", 100))  # noqa: E731
    assert pipeline.fine_tuning_strategy("full", fresh(), config) == ([], None)

    model = fresh()
    _, groups = pipeline.fine_tuning_strategy("freeze_encoder", model, config)
    assert _trainable(model, "encoder") == {False} and _trainable(model, "decoder") == {True}
    assert "encoder" not in {g["name"] for g in groups}

    model = fresh()
    (unfreeze_on_step,), groups = pipeline.fine_tuning_strategy("gradual", model, config)
    assert _trainable(model, "encoder") == {False} and "encoder" in {g["name"] for g in groups}
    assert unfreeze_on_step(19, model) == [] and _trainable(model, "encoder") == {False}
    assert unfreeze_on_step(20, model) == ["encoder"] and _trainable(model, "encoder") == {True}
    assert unfreeze_on_step(40, model) == ["embeddings"] and _trainable(model, "embed") == {True}

    _, groups = pipeline.fine_tuning_strategy("discriminative", fresh(), config)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["embeddings"] == pytest.approx(1e-4) and rates["encoder"] == pytest.approx(
        1e-3 / 3
    )
    assert rates["decoder"] == pytest.approx(1e-3)


def test_paraphrase_pairs_come_from_one_image(corpus):
    spec = pipeline.FinetuneSpec(src="en", tgt="en", task="paraphrase")
    train_pairs, valid_pairs = pipeline.task_pairs(spec, "train"), pipeline.task_pairs(spec, "val")
    assert len(train_pairs) == 29000 and len(valid_pairs) == pipeline.PARAPHRASE_VALID_IMAGES
    assert all(a != b for a, b in train_pairs[:100])  # two independent captions, not a copy
    sources, references = pipeline.paraphrase_test_set("en")
    assert len(sources) == 1014 - pipeline.PARAPHRASE_VALID_IMAGES and {
        len(r) for r in references
    } == {4}
    assert not {s for s, _ in valid_pairs} & set(sources)


def test_paraphraser_trains_and_strategies_run(toy_corpus, tokenizer, tmp_path):
    train = TrainConfig(
        max_steps=4, eval_every=2, max_tokens=1024, progress=False, select="val_bleu"
    )
    spec = pipeline.FinetuneSpec(
        src="en",
        tgt="en",
        task="paraphrase",
        pairs=100,
        preset="tiny",
        bleu_sentences=20,
        train=train,
    )
    model, history, _ = pipeline.finetune(spec, tmp_path / "paraphrase", tokenizer)
    assert [e["step"] for e in history.evals] == [2, 4] and "val_bleu" in history.evals[-1]
    child = replace(
        spec,
        task="translate",
        tgt="fr",
        init=str(tmp_path / "paraphrase" / "last.pt"),
        strategy="gradual",
    )
    translator, history, report = pipeline.finetune(child, tmp_path / "child", tokenizer)
    assert history.evals[-1]["step"] == 4
    # the same model size: every tensor of every part comes from the paraphraser
    parts = Counter(part_of(name) for name, _ in translator.named_parameters())
    assert {part: row["loaded"] for part, row in report.by_part().items()} == parts
    assert not report.initialised and not report.ignored
