"""Pipeline: cached runs are trained once, then loaded; specs round-trip through config.json."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tmtlib import pipeline
from tmtlib.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cached_run_trains_once_then_loads(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("TMT_HOME", str(tmp_path))
    spec = pipeline.PretrainSpec(objective="lm", langs=("en",), preset="tiny", sentences_per_lang=300,
                                 train=TrainConfig(max_steps=6, eval_every=3, max_tokens=1024, progress=False))
    model, history, folder = pipeline.cached_run(spec, tokenizer)
    assert folder.parent == tmp_path / "cache" / "runs" and pipeline.is_finished(folder)
    stamp = (folder / "last.pt").stat().st_mtime_ns
    again, history_again, same = pipeline.cached_run(spec, tokenizer)
    assert same == folder and (folder / "last.pt").stat().st_mtime_ns == stamp
    assert history_again.evals == history.evals
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    longer = replace(spec, train=replace(spec.train, max_steps=7))
    assert pipeline.runs_dir() / f"pretrain-{pipeline.spec_hash(longer)}" != folder


def test_spec_round_trips_through_config_json(tmp_path):
    spec = pipeline.FinetuneSpec(src="en", tgt="fr", pairs=1000, parts=("encoder",),
                                 train=TrainConfig(betas=(0.9, 0.99), select="val_bleu"))
    raw = json.loads(json.dumps(pipeline.spec_dict(spec)))
    assert pipeline.spec_from_dict(pipeline.FinetuneSpec, raw) == spec
    with pytest.raises(ValueError, match="unknown FinetuneSpec settings: colour"):
        pipeline.spec_from_dict(pipeline.FinetuneSpec, {**raw, "colour": "red"})
