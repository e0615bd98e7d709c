"""The training engine: batching, schedules, checkpoints, crash-resume, early stopping, torchrun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tmtlib import checkpoint
from tmtlib.batching import Example, collate, shard, token_batches
from tmtlib.models import Seq2Seq, model_config
from tmtlib.objectives import make_objective
from tmtlib.subwords import EOS_ID, PAD_ID
from tmtlib.train import History, TrainConfig, learning_rate_factor, train

SCRIPT = Path(__file__).parent / "scripts" / "tiny_run.py"
sys.path.insert(0, str(SCRIPT.parent))
from tiny_run import examples  # noqa: E402


def test_collate_builds_shifted_targets():
    batch = collate([Example((10, 11), (20, 21, 22), 5), Example((12,), (23,), 6)])
    assert batch.src.tolist() == [[10, 11, EOS_ID], [12, EOS_ID, PAD_ID]]
    assert batch.tgt_in.tolist() == [[5, 20, 21, 22], [6, 23, PAD_ID, PAD_ID]]
    assert batch.tgt_out.tolist() == [[20, 21, 22, EOS_ID], [23, EOS_ID, PAD_ID, PAD_ID]]
    assert (batch.src_tokens, batch.tgt_tokens) == (5, 6)
    lm = collate([Example(None, (20,), 5)])
    assert lm.src is None and lm.src_tokens == 0
    with pytest.raises(ValueError, match="mixes"):
        collate([Example(None, (20,), 5), Example((1,), (20,), 5)])


def test_token_batches_cover_everything_within_budget():
    sizes = [((i * 37) % 50) + 1 for i in range(500)]
    batches = token_batches(sizes, 256, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    assert all(len(b) * max(sizes[i] for i in b) <= 256 for b in batches)
    assert batches == token_batches(sizes, 256, seed=3) != token_batches(sizes, 256, seed=4)
    padded = sum(len(b) * max(sizes[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(sizes)  # bucketing keeps padding waste small
    shards = [shard(batches, r, 3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    assert not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))


def test_learning_rate_schedule():
    config = TrainConfig(warmup_steps=100, max_steps=1000)
    assert learning_rate_factor(0, config) == pytest.approx(0.01)
    assert learning_rate_factor(99, config) == pytest.approx(1.0)
    assert learning_rate_factor(399, config) == pytest.approx(0.5)
    cosine = TrainConfig(warmup_steps=100, max_steps=1000, schedule="cosine")
    assert learning_rate_factor(550, cosine) == pytest.approx(0.5, abs=1e-3)
    assert learning_rate_factor(1000, cosine) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown schedule"):
        TrainConfig(schedule="step")


def tiny(latent: int = 0) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(model_config("tiny", vocab_size=40, latent_dim=latent))


def quick(**overrides) -> TrainConfig:
    base = dict(
        max_steps=30,
        max_tokens=120,
        lr=2e-3,
        warmup_steps=5,
        log_every=1,
        progress=False,
        eval_every=10,
        checkpoint_every=10,
    )
    return TrainConfig(**{**base, **overrides})


def test_history_and_best_checkpoint(tmp_path):
    data = examples()
    history = train(
        tiny(),
        make_objective("ae"),
        data,
        quick(),
        valid=data[:20],
        out_dir=tmp_path,
        metadata={"note": "hello"},
    )
    steps, losses = history.column("nll")
    assert steps[0] == 1 and len(steps) == 30 and losses[-1] < losses[0]
    assert [e["step"] for e in history.evals] == [10, 20, 30]
    assert all(r["tokens_per_s"] > 0 for r in history.steps)
    best = checkpoint.load(tmp_path / "best.pt")
    assert best["note"] == "hello" and "optimizer" not in best
    last = checkpoint.load(tmp_path / "last.pt")
    assert last["progress"]["step"] == 30 and last["train_config"]["max_steps"] == 30
    # source + target tokens (EOS counted, padding not) of the 30 batches, epoch after epoch
    seed, sizes = quick().seed * 100_003, [e.size for e in data]
    batches = [b for epoch in range(5) for b in token_batches(sizes, 120, seed=seed + epoch)][:30]
    trained = [collate([data[i] for i in batch]) for batch in batches]
    assert last["progress"]["tokens"] == sum(b.src_tokens + b.tgt_tokens for b in trained)
    assert History.from_dict(last["history"]).evals == history.evals


def test_progress_json_tells_where_last_pt_stands_without_loading_it(tmp_path, monkeypatch):

    train(tiny(), make_objective("ae"), examples(), quick(max_steps=12), out_dir=tmp_path)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress == checkpoint.load(tmp_path / "last.pt")["progress"]
    assert progress["step"] == 12 and progress["stopped"] == "max_steps"

    def no_checkpoint_loads(path, *args, **kwargs):
        raise AssertionError(f"loaded {path}")

    monkeypatch.setattr(checkpoint, "load", no_checkpoint_loads)
    assert (
        checkpoint.RunFolder(tmp_path).is_finished()
        and checkpoint.RunFolder(tmp_path).read_progress() == progress
    )
    monkeypatch.undo()
    (tmp_path / "progress.json").unlink()  # a folder written before progress.json: from last.pt
    assert checkpoint.RunFolder(tmp_path).read_progress() == progress
    assert checkpoint.RunFolder(tmp_path / "empty").read_progress() is None


def test_early_stopping_and_time_budget(tmp_path):
    data = examples()
    # a learning rate of zero never improves: patience 2 stops at the third evaluation
    history = train(
        tiny(),
        make_objective("ae"),
        data,
        quick(lr=0.0, eval_every=5, patience=2, max_steps=100),
        valid=data[:20],
    )
    assert [e["step"] for e in history.evals] == [5, 10, 15]
    timed = train(tiny(), make_objective("ae"), data, quick(max_steps=10_000, max_minutes=0.02))
    assert timed.steps[-1]["step"] < 10_000


def test_resume_continues_to_the_same_result(tmp_path):
    data = examples()
    straight = tiny()
    train(straight, make_objective("ae"), data, quick(max_steps=24, checkpoint_every=4))
    resumed = tiny()
    train(
        resumed,
        make_objective("ae"),
        data,
        quick(max_steps=12, checkpoint_every=4),
        out_dir=tmp_path,
    )
    again = tiny()  # a fresh process would start from a fresh model: the checkpoint restores it
    train(
        again, make_objective("ae"), data, quick(max_steps=24, checkpoint_every=4), out_dir=tmp_path
    )
    for a, b in zip(straight.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = checkpoint.save_atomic({"model": {"w": torch.ones(2)}}, tmp_path / "last.pt")
    real_save = torch.save

    def crash(obj, handle):
        real_save({"model": {}}, handle)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({"model": {"w": torch.zeros(2)}}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["model"]["w"].tolist() == [1.0, 1.0]


def test_json_and_text_writes_are_atomic(tmp_path, monkeypatch):
    path = checkpoint.write_json_atomic({"bleu": 20.0}, tmp_path / "record.json")

    def crash(handle):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(os, "fsync", crash)  # the new bytes are written, not yet renamed into place
    with pytest.raises(KeyboardInterrupt):
        checkpoint.write_json_atomic({"bleu": 30.0}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"bleu": 20.0}
    checkpoint.write_text_atomic("| table |\n", tmp_path / "summary.md")
    assert (tmp_path / "summary.md").read_text() == "| table |\n"
    checkpoint.write_json_atomic({"bleu": 30.0}, path)
    assert json.loads(path.read_text()) == {"bleu": 30.0} and not list(tmp_path.glob(".*.tmp"))


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(checkpoint.CheckpointError, match="damaged or partial"):
        checkpoint.load(junk)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not a tmt checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


def _run(out: Path, steps: int, slow: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), str(steps), "--slow", str(slow)]
    )


@pytest.mark.slow
def test_sigkill_then_restart_reaches_the_uninterrupted_result(tmp_path):
    assert _run(tmp_path / "straight", 40).wait(timeout=300) == 0
    victim = _run(tmp_path / "killed", 40, slow=0.1)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if last.exists() and checkpoint.load(last)["progress"]["step"] >= 15:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stopped_at = checkpoint.load(last)["progress"]["step"]
    assert 15 <= stopped_at < 40, "the run was not killed mid-way"
    assert _run(tmp_path / "killed", 40).wait(timeout=300) == 0
    straight = float((tmp_path / "straight" / "final-loss.txt").read_text())
    resumed = float((tmp_path / "killed" / "final-loss.txt").read_text())
    assert resumed == pytest.approx(straight, rel=1e-6)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_keep_identical_weights(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(SCRIPT),
        str(tmp_path),
        "12",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "final-rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "final-rank1.pt", weights_only=True)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    initial = tiny().state_dict()
    assert not torch.equal(rank0["embed.weight"], initial["embed.weight"])  # it trained
    saved = checkpoint.load(tmp_path / "last.pt")
    assert saved["progress"]["step"] == 12


def test_gradient_accumulation_takes_one_step_per_group_of_batches():
    data = examples()
    n_batches = len(token_batches([e.size for e in data], 120, seed=7 * 100_003))
    history = train(
        tiny(),
        make_objective("ae"),
        data,
        quick(max_steps=10_000, max_epochs=1, accumulate=2, seed=7, eval_every=10_000),
    )
    assert history.steps[-1]["step"] == n_batches // 2
    first, last = history.steps[0], history.steps[-1]
    assert last["nll"] < first["nll"]
    with pytest.raises(ValueError, match="fewer than accumulate"):
        train(tiny(), make_objective("ae"), data[:3], quick(accumulate=4))


def test_bf16_mixed_precision_trains_and_keeps_fp32_weights(tmp_path):
    data = examples()
    model = tiny()
    history = train(
        model,
        make_objective("ae"),
        data,
        quick(precision="bf16"),
        valid=data[:20],
        out_dir=tmp_path,
    )
    exact = train(tiny(), make_objective("ae"), data, quick(), valid=data[:20])
    assert [e["val_loss"] for e in history.evals] == pytest.approx(
        [e["val_loss"] for e in exact.evals], rel=0.01
    )
    assert history.evals[-1]["val_loss"] < history.evals[0]["val_loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert checkpoint.load(tmp_path / "last.pt")["train_config"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        quick(precision="fp16")


def test_importing_tmtlib_leaves_denormals_alone_and_training_restores_them():
    """Denormals are flushed only while ``train`` runs: importing the library changes nothing
    global."""
    import subprocess
    import sys

    probe = "import torch, tmtlib, tmtlib.train; print(float(torch.tensor([1e-40]) * 1.0))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert float(out) > 0.0
    from tmtlib.train import flush_denormals

    with flush_denormals():
        assert float(torch.tensor([1e-40]) * 1.0) == 0.0
    assert float(torch.tensor([1e-40]) * 1.0) > 0.0
