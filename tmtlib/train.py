"""The training engine: one loop for every objective, on a laptop CPU or many GPUs.

* token-bucketed batches (``tmtlib.batching``), AdamW (Loshchilov & Hutter 2019), linear warm-up
  then inverse-square-root (Vaswani et al. 2017) or cosine decay, gradient clipping and
  accumulation;
* evaluation every ``eval_every`` steps (validation loss, plus any metric such as BLEU from an
  ``evaluate`` callback), ``best.pt`` for the best score, early stopping after ``patience``
  evaluations without improvement;
* crash safety: ``last.pt`` holds model, optimiser, scheduler, RNG state, data position, config
  and metrics, written atomically; calling ``train`` again with the same ``out_dir`` resumes
  exactly where the last checkpoint stopped and, with the same seed, reaches the same result;
* scale-out: run the same code under ``torchrun`` and it trains with DistributedDataParallel
  (NCCL on GPUs, gloo on CPUs), each rank on its own shard of every epoch's batches, with rank 0
  alone logging and writing checkpoints.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import checkpoint, settings
from .batching import Example, collate, shard, token_batches
from .models import PRECISIONS, autocast, native_bf16
from .objectives import Objective
from .validation import check_fields, setting

Evaluator = Callable[[torch.nn.Module], dict[str, float]]
StepCallback = Callable[[int, torch.nn.Module], Any]


LOSS_METRICS = ("val_loss", "val_nll", "val_kl", "val_ppl")  # what ``validation_loss`` reports


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved beside every checkpoint. Every field is checked when it is built
    (``tmtlib.validation``), so a bad setting never reaches the first training step."""

    max_steps: int = setting(1000, at_least=1, help="optimiser steps to train for")
    max_epochs: int | None = setting(
        None, at_least=1, help="passes over the training data at most; none: no limit"
    )
    max_minutes: float | None = setting(
        None, above=0, help="wall-clock budget in minutes, summed over resumed runs; none: no limit"
    )
    max_tokens: int = setting(
        4096, at_least=1, help="padded tokens per batch, per process (token-bucketed batches)"
    )
    accumulate: int = setting(
        1, at_least=1, help="batches per optimiser step (gradient accumulation)"
    )
    lr: float = setting(
        7e-4,
        at_least=0,
        help="peak learning rate of AdamW (Loshchilov & Hutter 2019); 0: "
        "nothing learns (a baseline)",
    )
    betas: tuple[float, float] = setting(
        (0.9, 0.98),
        at_least=0,
        below=1,
        help="AdamW's moment decay rates beta1 beta2 (Vaswani et al. 2017)",
    )
    weight_decay: float = setting(0.01, at_least=0, help="AdamW's decoupled weight decay")
    warmup_steps: int = setting(400, at_least=0, help="steps of linear learning-rate warm-up")
    schedule: str = setting(
        "inverse_sqrt",
        choices=("inverse_sqrt", "cosine", "constant"),
        help="learning-rate decay after warm-up: inverse square root (Vaswani et al. 2017), "
        "cosine to zero at max_steps (Loshchilov & Hutter 2017), or constant",
    )
    clip_norm: float = setting(
        1.0, at_least=0, help="largest gradient norm (clipping); 0: no clipping"
    )
    eval_every: int = setting(500, at_least=1, help="steps between evaluations on validation data")
    checkpoint_every: int = setting(
        500, at_least=1, help="steps between writes of last.pt, the point a rerun resumes from"
    )
    patience: int | None = setting(
        None, at_least=1, help="evaluations without improvement before stopping early; none: never"
    )
    select: str = setting(
        "val_loss",
        help="validation metric that picks best.pt (val_loss, val_nll, val_kl, val_ppl, or "
        "val_bleu for translators); names ending in loss are minimised",
    )
    seed: int = setting(
        0, at_least=0, help="random seed of initialisation, batch order and dropout"
    )
    log_every: int = setting(25, at_least=1, help="steps between training records in history.json")
    progress: bool = setting(True, help="a progress bar on stderr")
    device: str = setting(
        "auto",
        pattern=r"auto|cpu|mps|cuda(:\d+)?",
        help="auto (the current GPU if there is one, else the CPU), cpu, mps, cuda or cuda:N",
    )
    precision: str = setting(
        "fp32",
        choices=PRECISIONS,
        help="bf16: mixed precision, for hardware with native bf16 (tmtlib.models.native_bf16)",
    )

    def __post_init__(self):
        check_fields(self)


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then the decay."""
    warmup = max(1, config.warmup_steps)
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "inverse_sqrt":
        return math.sqrt(warmup / (step + 1))
    if config.schedule == "cosine":
        progress = (step - warmup) / max(1, config.max_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


@dataclass
class History:
    """What happened during training: one record per logged step and one per evaluation."""

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    def column(self, key: str, evals: bool = False) -> tuple[list[float], list[float]]:
        """(steps, values) of one metric, for plotting."""
        rows = [r for r in (self.evals if evals else self.steps) if key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]

    def to_dict(self) -> dict[str, list]:
        return {"steps": self.steps, "evals": self.evals}

    @classmethod
    def from_dict(cls, raw: dict[str, list]) -> History:
        return cls(list(raw["steps"]), list(raw["evals"]))


@dataclass
class Progress:
    """Where training stands: saved in checkpoints so a restart continues from here."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch of the epoch
    elapsed: float = 0.0  # seconds of training so far
    tokens: int = 0  # non-pad source + target tokens trained on (this process)
    best: float | None = None
    stale_evals: int = 0
    stopped: str = ""


def distributed() -> tuple[int, int]:
    """(rank, world_size); joins the process group when launched by torchrun."""
    world = settings.world_size()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(settings.local_rank())
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def pick_device(name: str) -> torch.device:
    """The device ``name`` ("auto": the current GPU if there is one, else the CPU); a device
    this machine lacks is a ValueError, before any work."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) that torch "
            f"can use; choose --device cpu or auto"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {name!r}: this machine has no MPS GPU torch can use; choose --device "
            "cpu or auto"
        )
    return device


def check_run(
    config: TrainConfig,
    examples: Sequence[Example],
    valid: Sequence[Example] | None = None,
    evaluate: Evaluator | None = None,
) -> None:
    """Refuse, before anything is written or trained, a run that these data and this machine
    would make fail later: no examples, an empty validation set, a ``select`` metric no
    evaluation reports, batches smaller than one example, a device that is not there."""
    if not examples:
        raise ValueError("no training examples: check the data and the length filter")
    if valid is not None and not valid:
        raise ValueError("the validation set is empty")
    if valid is not None and evaluate is None and config.select not in LOSS_METRICS:
        raise ValueError(
            f"unknown select {config.select!r}: validation reports {', '.join(LOSS_METRICS)}"
        )
    longest = max(example.size for example in examples)
    if config.max_tokens < longest:
        raise ValueError(
            f"max_tokens={config.max_tokens} is smaller than the longest training example "
            f"({longest} tokens with EOS): raise max_tokens to at least {longest}"
        )
    pick_device(config.device)


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    objective: Objective,
    examples: Sequence[Example],
    max_tokens: int = 8192,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Per-token NLL and KL (zero but for a VAE) over ``examples``, dropout off, and their sum.

    For a VAE this sum is *not* -ELBO: in eval mode ``VAE.loss`` decodes from the posterior mean,
    so the NLL is -log p(x | z = mu), not the ELBO's E_{q(z|x)}[-log p(x | z)]. It is a fixed,
    noise-free figure for choosing checkpoints; ``tmtlib.vae_diagnostics`` measures the ELBO with
    sampled z, the importance-weighted bound on -log p(x) and whether the decoder reads z."""
    was_training = model.training
    model.eval()
    nll = kl = 0.0
    tokens = 0
    for indices in token_batches([e.size for e in examples], max_tokens, shuffle=False):
        with torch.no_grad():
            report = objective.loss(model, collate([examples[i] for i in indices]).to(device))
        nll, kl, tokens = nll + report.nll, kl + report.kl, tokens + report.tokens
    model.train(was_training)
    return {
        "val_nll": nll / tokens,
        "val_kl": kl / tokens,
        "val_loss": (nll + kl) / tokens,
        "val_ppl": math.exp(min(50.0, nll / tokens)),
    }


class _ObjectiveModule(torch.nn.Module):
    """Model and objective as one module, so DistributedDataParallel sees the loss in forward()."""

    def __init__(self, model: torch.nn.Module, objective: Objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch, step: int):
        report = self.objective.loss(self.model, batch, step)
        return report.loss, report


class _Run:
    """One training run's moving parts: model, optimiser, schedule, progress, history."""

    def __init__(
        self,
        model,
        objective,
        examples,
        config,
        valid,
        evaluate,
        out_dir,
        param_groups,
        callbacks,
        metadata,
    ):
        self.rank, self.world = distributed()
        self.config, self.objective, self.examples = config, objective, examples
        self.valid, self.evaluate, self.callbacks = valid, evaluate, callbacks
        self.out_dir = Path(out_dir) if out_dir else None
        self.metadata = dict(metadata or {})
        self.device = pick_device(config.device)
        if config.precision == "bf16" and not native_bf16(self.device):
            warnings.warn(
                f"this {self.device.type} has no native bf16: bf16 training will be slower "
                "than fp32"
            )
        self.model = model.to(self.device)
        self.sizes = [e.size for e in examples]
        torch.manual_seed(config.seed + self.rank)
        groups = (
            param_groups
            if param_groups is not None
            else [{"params": [p for p in model.parameters()]}]
        )
        self.optimizer = torch.optim.AdamW(
            groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: learning_rate_factor(s, config)
        )
        self.progress, self.history = Progress(), History()
        self.resume()
        self.net = _ObjectiveModule(model, objective)
        if self.world > 1:
            self.net = DistributedDataParallel(
                self.net, find_unused_parameters=not objective.uses_encoder
            )

    # --- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "progress": asdict(self.progress),
            "train_config": asdict(self.config),
            "history": self.history.to_dict(),
            **self.metadata,
        }

    def resume(self) -> None:
        last = self.out_dir / "last.pt" if self.out_dir else None
        if last is None or not last.exists():
            return
        saved = checkpoint.load(last)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"]["torch"])
        if "cuda" in saved["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved["rng"]["cuda"])
        self.progress = Progress(**saved["progress"])
        self.progress.stopped = ""
        self.history = History.from_dict(saved["history"])

    def save(self, name: str, full: bool = True) -> None:
        if self.rank != 0 or self.out_dir is None:
            return
        if full:
            checkpoint.save_atomic(self.state(), self.out_dir / name)
            checkpoint.save_progress(asdict(self.progress), self.out_dir)
        else:
            weights = {
                "model": self.model.state_dict(),
                "progress": asdict(self.progress),
                "train_config": asdict(self.config),
                **self.metadata,
            }
            checkpoint.save_atomic(weights, self.out_dir / name)
        checkpoint.write_json_atomic(
            self.history.to_dict(), self.out_dir / "history.json", indent=None
        )

    # --- the loop -----------------------------------------------------------------------------
    def epoch_batches(self) -> list[list[int]]:
        batches = token_batches(
            self.sizes,
            self.config.max_tokens,
            seed=self.config.seed * 100_003 + self.progress.epoch,
        )
        batches = shard(batches, self.rank, self.world)
        if len(batches) < self.config.accumulate:
            raise ValueError(
                f"an epoch has {len(batches)} batches per process, fewer than accumulate="
                f"{self.config.accumulate}: use more data or smaller batches"
            )
        return batches

    def run(self) -> History:
        config, progress = self.config, self.progress
        if self.finished():  # resumed a run that had already ended: nothing to do
            return self.history
        bar = tqdm(
            total=config.max_steps,
            initial=progress.step,
            disable=not config.progress or self.rank != 0,
            desc=self.objective.name,
            unit="step",
            dynamic_ncols=True,
        )
        self.model.train()
        while not self.finished():
            batches = self.epoch_batches()
            while progress.batch + config.accumulate <= len(batches) and not self.finished():
                started = time.perf_counter()
                group = batches[progress.batch : progress.batch + config.accumulate]
                stats = self.step(group)
                progress.batch += config.accumulate
                progress.step += 1
                progress.elapsed += time.perf_counter() - started
                progress.tokens += stats["tokens"] + stats["src_tokens"]
                self.after_step(stats, time.perf_counter() - started, bar)
            if progress.batch + config.accumulate > len(batches):
                progress.epoch, progress.batch = progress.epoch + 1, 0
        bar.close()
        if progress.step % config.eval_every and self.valid is not None:
            self.run_evaluation()
        self.save("last.pt")
        return self.history

    def finished(self) -> bool:
        config, progress = self.config, self.progress
        if progress.step >= config.max_steps:
            progress.stopped = progress.stopped or "max_steps"
        elif config.max_epochs is not None and progress.epoch >= config.max_epochs:
            progress.stopped = "max_epochs"
        elif config.max_minutes is not None and progress.elapsed >= 60 * config.max_minutes:
            progress.stopped = "max_minutes"
        elif config.patience is not None and progress.stale_evals >= config.patience:
            progress.stopped = "early_stopping"
        return bool(progress.stopped)

    def step(self, group: list[list[int]]) -> dict[str, float]:
        """One optimiser step over ``accumulate`` batches; returns summed statistics."""
        totals = {"nll": 0.0, "kl": 0.0, "tokens": 0, "src_tokens": 0, "kl_weight": 0.0}
        for micro, indices in enumerate(group):
            rng = random.Random(
                f"{self.config.seed}/{self.progress.epoch}/"
                f"{self.progress.batch + micro}/{self.rank}"
            )
            batch = collate([self.objective.corrupt(self.examples[i], rng) for i in indices]).to(
                self.device
            )
            last = micro == len(group) - 1
            sync = nullcontext() if last or self.world == 1 else self.net.no_sync()
            with sync, self.autocast():
                loss, report = self.net(batch, self.progress.step)
                (loss / len(group)).backward()
            totals["nll"] += report.nll
            totals["kl"] += report.kl
            totals["tokens"] += report.tokens
            totals["src_tokens"] += batch.src_tokens
            totals["kl_weight"] = report.kl_weight
        if self.config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return totals

    def autocast(self):
        return autocast(self.device, self.config.precision)

    def after_step(self, stats: dict[str, float], seconds: float, bar) -> None:
        config, progress = self.config, self.progress
        for callback in self.callbacks:
            callback(progress.step, self.model)
        if progress.step % config.log_every == 0 or progress.step == 1:
            record = {
                "step": progress.step,
                "epoch": progress.epoch,
                "time": round(progress.elapsed, 3),
                "loss": (stats["nll"] + stats["kl_weight"] * stats["kl"]) / stats["tokens"],
                "nll": stats["nll"] / stats["tokens"],
                "kl": stats["kl"] / stats["tokens"],
                "kl_weight": stats["kl_weight"],
                "lr": self.scheduler.get_last_lr()[0],
                "tokens_per_s": (stats["tokens"] + stats["src_tokens"]) * self.world / seconds,
            }
            self.history.steps.append(record)
            bar.set_postfix(loss=f"{record['nll']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        bar.update(1)
        if progress.step % config.eval_every == 0 and self.valid is not None:
            self.run_evaluation()
        if progress.step % config.checkpoint_every == 0:
            self.save("last.pt")

    def run_evaluation(self) -> None:
        """Score the model; keep best.pt; count evaluations without improvement.

        Every rank evaluates the same data with identical weights, so all reach the same
        early-stopping decision without communicating.
        """
        metrics = validation_loss(self.model, self.objective, self.valid, device=self.device)
        if self.evaluate is not None:
            metrics.update(self.evaluate(self.model))
        self.model.train()
        self.history.evals.append(
            {"step": self.progress.step, "time": round(self.progress.elapsed, 3), **metrics}
        )
        # a custom evaluator without the metric: keep the steps, then stop
        if self.config.select not in metrics:
            self.save("last.pt")
            raise ValueError(
                f"unknown select {self.config.select!r}: the evaluation reports "
                f"{', '.join(metrics)}"
            )
        score = metrics[self.config.select]
        lower_is_better = self.config.select.endswith("loss")
        best = self.progress.best
        if best is None or (score < best if lower_is_better else score > best):
            self.progress.best, self.progress.stale_evals = score, 0
            self.save("best.pt", full=False)
        else:
            self.progress.stale_evals += 1


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero while a run trains, and switch it off again afterwards.

    Denormals cost 10-100x more on x86 CPUs, and the tiny gradients and Adam moments of a converging
    model fall into that range (a VAE overfit ran 25x slower). The switch is process-wide and torch
    has no way to read it, so it is on only inside ``train`` and back at torch's default (off)
    after.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train(
    model: torch.nn.Module,
    objective: Objective,
    examples: Sequence[Example],
    config: TrainConfig = TrainConfig(),
    *,
    valid: Sequence[Example] | None = None,
    evaluate: Evaluator | None = None,
    out_dir: str | os.PathLike | None = None,
    param_groups: list[dict] | None = None,
    callbacks: Sequence[StepCallback] = (),
    metadata: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` on ``examples`` with ``objective``; resume from ``out_dir/last.pt`` if
    present.

    ``metadata`` (model config, tokenizer fingerprint, run settings) is stored in every checkpoint.
    ``param_groups`` overrides the optimiser's parameter groups (per-part learning rates, see
    ``tmtlib.transfer.parameter_groups``); ``callbacks`` run after each optimiser step with ``(step,
    model)`` (gradual unfreezing uses this). Every setting is checked against the data and the
    machine first (``check_run``), and ``out_dir`` is locked for the run's lifetime
    (``checkpoint.run_folder_lock``): a second process on it is refused. Returns the metrics
    history.
    """
    check_run(config, examples, valid, evaluate)
    with (
        checkpoint.run_folder_lock(out_dir) if out_dir is not None else nullcontext(),
        flush_denormals(),
    ):
        return _Run(
            model,
            objective,
            list(examples),
            config,
            valid,
            evaluate,
            out_dir,
            param_groups,
            callbacks,
            metadata,
        ).run()
