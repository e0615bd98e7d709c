"""The training loop's small parts, each on its own: why a run stops, which evaluation is best,
what a run folder's checkpoints hold and how a rerun resumes from them, and that an objective
must say what its loss is."""

from __future__ import annotations

import pytest
import torch

from tmtlib import checkpoint
from tmtlib.objectives import Objective, Translation, make_objective
from tmtlib.train import (
    Progress,
    TrainConfig,
    is_better,
    optimiser_and_schedule,
    resume,
    stop_reason,
)


def quick(**overrides) -> TrainConfig:
    return TrainConfig(**{"max_steps": 10, "progress": False, **overrides})


@pytest.mark.parametrize(
    ("progress", "overrides", "reason"),
    [
        (Progress(step=9), {}, ""),
        (Progress(step=10), {}, "max_steps"),
        (Progress(step=3, epoch=2), {"max_epochs": 2}, "max_epochs"),
        (Progress(step=3, epoch=1), {"max_epochs": 2}, ""),
        (Progress(step=3, elapsed=61.0), {"max_minutes": 1.0}, "max_minutes"),
        (Progress(step=3, stale_evals=2), {"patience": 2}, "early_stopping"),
        (Progress(step=3, stale_evals=2), {}, ""),  # no patience: never stops early
        # every limit reached at once: the first in the order of TrainConfig's fields
        (
            Progress(step=10, epoch=5, elapsed=600.0, stale_evals=9),
            {"max_epochs": 1, "max_minutes": 1.0, "patience": 1},
            "max_steps",
        ),
        (
            Progress(step=3, epoch=5, elapsed=600.0, stale_evals=9),
            {"max_epochs": 1, "max_minutes": 1.0, "patience": 1},
            "max_epochs",
        ),
    ],
)
def test_stop_reason_names_the_first_limit_reached_and_changes_nothing(progress, overrides, reason):
    before = Progress(**vars(progress))
    assert stop_reason(progress, quick(**overrides)) == reason
    assert progress == before


def test_a_loss_is_better_lower_and_bleu_higher():
    assert is_better(2.0, None, "val_loss") and is_better(20.0, None, "val_bleu")
    assert is_better(1.9, 2.0, "val_loss") and not is_better(2.0, 2.0, "val_loss")
    assert is_better(21.0, 20.0, "val_bleu") and not is_better(19.0, 20.0, "val_bleu")


def parts(folder, writer: bool = True):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer, scheduler = optimiser_and_schedule(model, quick(), None)
    return checkpoint.TrainingCheckpoints(
        folder, model, optimizer, scheduler, {"max_steps": 10}, {"note": "hi"}, writer
    )


def test_checkpoints_written_then_resumed_restore_weights_progress_and_history(tmp_path):
    saved = parts(tmp_path)
    saved.model.weight.data.fill_(0.5)
    progress = {**vars(Progress(step=4, best=1.5)), "stopped": "max_steps"}
    history = {"steps": [{"step": 4, "nll": 2.0}], "evals": [{"step": 4, "val_loss": 1.5}]}
    saved.save_best(progress, history)
    assert sorted(checkpoint.load(tmp_path / "best.pt")) == [
        "model",
        "note",
        "progress",
        "train_config",
    ]
    saved.save_last(progress, history)
    assert checkpoint.RunFolder(tmp_path).read_progress() == progress
    assert {p.name for p in tmp_path.iterdir()} >= {
        "last.pt",
        "best.pt",
        "progress.json",
        "history.json",
    }

    fresh = parts(tmp_path)
    assert not torch.equal(fresh.model.weight, saved.model.weight)
    resumed_progress, resumed_history = resume(fresh)
    assert torch.equal(fresh.model.weight, saved.model.weight)
    # the reason it stopped is forgotten: the config of the rerun may allow more
    assert resumed_progress == Progress(**{**progress, "stopped": ""})
    assert resumed_history.to_dict() == history


def test_only_the_writer_writes_and_a_folder_without_last_pt_starts_afresh(tmp_path):
    reader = parts(tmp_path, writer=False)
    reader.save_last(vars(Progress()), {"steps": [], "evals": []})
    reader.save_best(vars(Progress()), {"steps": [], "evals": []})
    assert list(tmp_path.iterdir()) == []
    assert reader.resume() is None and parts(None).resume() is None
    progress, history = resume(reader)
    assert progress == Progress() and history.steps == history.evals == []


def test_an_objective_must_define_its_loss():
    class Unfinished(Objective):
        name = "unfinished"

    with pytest.raises(TypeError, match="loss"):
        Unfinished()
    assert isinstance(make_objective("ae"), Translation)  # a sentence translated into itself
    assert not isinstance(make_objective("lm"), Translation)
    assert make_objective("vae").describe().startswith("VAE")
    assert Translation().describe() == "translation (label smoothing 0.1)"
