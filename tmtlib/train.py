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

To read it: ``train`` (at the end) sets a run up and ``_loop`` below it trains, step after step,
until ``stop_reason`` names a reason. The helpers above them each do one thing: all are pure but
``optimisation_step`` (it updates the weights) and ``record_evaluation`` (it updates the progress
and history and writes ``best.pt``). What a run folder holds, and how a rerun resumes from it, is
``checkpoint.TrainingCheckpoints``.
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
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import checkpoint, settings
from .batching import Batch, Example, collate, shard, token_batches
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
    """Multiplier of the peak learning rate at ``step``: a linear warm-up over ``warmup_steps``,
    then ``schedule``: the inverse square root of the step, sqrt(warmup / step) (Vaswani et al.
    2017, eq. 3, scaled to 1 at the peak), a half cosine to zero at ``max_steps`` (Loshchilov &
    Hutter 2017), or constant. The warm-up keeps Adam's first, noisy updates small."""
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
        """The history as plain lists, for ``history.json`` and checkpoints."""
        return {"steps": self.steps, "evals": self.evals}

    @classmethod
    def from_dict(cls, raw: dict[str, list]) -> History:
        """The history that ``to_dict`` wrote."""
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


class _ModelWithLoss(torch.nn.Module):
    """Model and objective as one module whose forward() returns the loss, so that
    DistributedDataParallel sees the whole computation it must synchronise."""

    def __init__(self, model: torch.nn.Module, objective: Objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch: Batch, step: int):
        report = self.objective.loss(self.model, batch, step)
        return report.loss, report


def training_device(config: TrainConfig) -> torch.device:
    """The device to train on (``pick_device``), with a warning when bf16 would run slower than
    fp32 there (no native bf16)."""
    device = pick_device(config.device)
    if config.precision == "bf16" and not native_bf16(device):
        warnings.warn(
            f"this {device.type} has no native bf16: bf16 training will be slower than fp32"
        )
    return device


def optimiser_and_schedule(
    model: torch.nn.Module, config: TrainConfig, param_groups: list[dict] | None
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (Loshchilov & Hutter 2019) over ``param_groups`` (default: every parameter of
    ``model``), and its schedule: the peak rate times ``learning_rate_factor``."""
    groups = param_groups if param_groups is not None else [{"params": list(model.parameters())}]
    optimizer = torch.optim.AdamW(
        groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config)
    )
    return optimizer, scheduler


def resume(checkpoints: checkpoint.TrainingCheckpoints) -> tuple[Progress, History]:
    """Where the run in the checkpoints' folder stopped (model, optimiser, scheduler and RNG
    restored from ``last.pt``), or a fresh start; the reason it stopped is forgotten, since the
    config may now allow more."""
    saved = checkpoints.resume()
    if saved is None:
        return Progress(), History()
    progress, history = saved
    return Progress(**{**progress, "stopped": ""}), History.from_dict(history)


def progress_bar(config: TrainConfig, progress: Progress, shown: bool, name: str) -> tqdm:
    """A bar of optimiser steps on stderr, starting where ``progress`` stands; hidden unless
    ``shown`` (rank 0) and ``config.progress``."""
    return tqdm(
        total=config.max_steps,
        initial=progress.step,
        disable=not (config.progress and shown),
        desc=name,
        unit="step",
        dynamic_ncols=True,
    )


def stop_reason(progress: Progress, config: TrainConfig) -> str:
    """Why training must stop now, or "" to go on: the first limit reached of ``max_steps``,
    ``max_epochs``, ``max_minutes`` (summed over resumed runs) and ``patience`` (early stopping:
    evaluations in a row without improvement)."""
    if progress.step >= config.max_steps:
        return "max_steps"
    if config.max_epochs is not None and progress.epoch >= config.max_epochs:
        return "max_epochs"
    if config.max_minutes is not None and progress.elapsed >= 60 * config.max_minutes:
        return "max_minutes"
    if config.patience is not None and progress.stale_evals >= config.patience:
        return "early_stopping"
    return ""


def epoch_batches(
    sizes: Sequence[int], config: TrainConfig, epoch: int, rank: int, world: int
) -> list[list[int]]:
    """This process's batches of ``epoch`` (example indices): token-bucketed in an order fixed by
    the seed and the epoch, then sharded across the ``world`` processes."""
    batches = token_batches(sizes, config.max_tokens, seed=config.seed * 100_003 + epoch)
    batches = shard(batches, rank, world)
    if len(batches) < config.accumulate:
        raise ValueError(
            f"an epoch has {len(batches)} batches per process, fewer than accumulate="
            f"{config.accumulate}: use more data or smaller batches"
        )
    return batches


def corrupted_batches(
    examples: Sequence[Example],
    objective: Objective,
    batches: Sequence[list[int]],
    rng_names: Sequence[str],
    device: torch.device,
) -> list[Batch]:
    """The model's inputs for ``batches`` of example indices, their examples corrupted by the
    objective (noise, for a denoising autoencoder) with one ``random.Random`` per batch, seeded by
    its name in ``rng_names``: the same noise for the same batch, after a resume too."""
    inputs = []
    for batch, name in zip(batches, rng_names):
        rng = random.Random(name)
        inputs.append(collate([objective.corrupt(examples[i], rng) for i in batch]).to(device))
    return inputs


def optimisation_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batches: Sequence[Batch],
    step: int,
    config: TrainConfig,
) -> dict[str, float]:
    """One optimiser step on the mean gradient of ``batches`` (gradient accumulation; under DDP
    the gradients are averaged across processes on the last batch only), clipped to
    ``clip_norm``; the batches' summed NLL, KL and token counts, and the KL weight."""
    totals = {"nll": 0.0, "kl": 0.0, "tokens": 0, "src_tokens": 0, "kl_weight": 0.0}
    device = next(net.parameters()).device
    for k, batch in enumerate(batches):
        last = k == len(batches) - 1
        in_sync = last or not isinstance(net, DistributedDataParallel)
        with nullcontext() if in_sync else net.no_sync(), autocast(device, config.precision):
            loss, report = net(batch, step)
            (loss / len(batches)).backward()
        totals["nll"] += report.nll
        totals["kl"] += report.kl
        totals["tokens"] += report.tokens
        totals["src_tokens"] += batch.src_tokens
        totals["kl_weight"] = report.kl_weight
    if config.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return totals


def step_record(
    progress: Progress, stats: dict[str, float], lr: float, world: int, seconds: float
) -> dict[str, float]:
    """The history's record of the step just taken: per-token loss (NLL + beta * KL), NLL and KL,
    the learning rate, and the throughput of all ``world`` processes."""
    return {
        "step": progress.step,
        "epoch": progress.epoch,
        "time": round(progress.elapsed, 3),
        "loss": (stats["nll"] + stats["kl_weight"] * stats["kl"]) / stats["tokens"],
        "nll": stats["nll"] / stats["tokens"],
        "kl": stats["kl"] / stats["tokens"],
        "kl_weight": stats["kl_weight"],
        "lr": lr,
        "tokens_per_s": (stats["tokens"] + stats["src_tokens"]) * world / seconds,
    }


def evaluation(
    model: torch.nn.Module,
    objective: Objective,
    valid: Sequence[Example],
    evaluate: Evaluator | None,
    device: torch.device,
) -> dict[str, float]:
    """The validation metrics (``validation_loss``, plus whatever ``evaluate`` reports, such as
    BLEU); the model is left in training mode."""
    metrics = validation_loss(model, objective, valid, device=device)
    if evaluate is not None:
        metrics.update(evaluate(model))
    model.train()
    return metrics


def is_better(score: float, best: float | None, select: str) -> bool:
    """Whether ``score`` of the metric ``select`` beats the best so far: lower for a loss (names
    ending in "loss"), higher for anything else (BLEU)."""
    if best is None:
        return True
    return score < best if select.endswith("loss") else score > best


def record_evaluation(
    metrics: dict[str, float],
    config: TrainConfig,
    progress: Progress,
    history: History,
    checkpoints: checkpoint.TrainingCheckpoints,
) -> None:
    """Add ``metrics`` to the history; on a new best score keep ``best.pt``, otherwise count one
    more evaluation without improvement (early stopping counts these).

    Every process evaluates the same data with identical weights, so all reach the same
    early-stopping decision without communicating."""
    history.evals.append({"step": progress.step, "time": round(progress.elapsed, 3), **metrics})
    if config.select not in metrics:  # a custom evaluator without the metric: keep the steps
        checkpoints.save_last(asdict(progress), history.to_dict())
        raise ValueError(
            f"unknown select {config.select!r}: the evaluation reports {', '.join(metrics)}"
        )
    if is_better(metrics[config.select], progress.best, config.select):
        progress.best, progress.stale_evals = metrics[config.select], 0
        checkpoints.save_best(asdict(progress), history.to_dict())
    else:
        progress.stale_evals += 1


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
    folder = Path(out_dir) if out_dir else None
    with checkpoint.run_folder_lock(folder) if folder else nullcontext(), flush_denormals():
        rank, world = distributed()
        device = training_device(config)
        model = model.to(device)
        torch.manual_seed(config.seed + rank)
        optimizer, scheduler = optimiser_and_schedule(model, config, param_groups)
        checkpoints = checkpoint.TrainingCheckpoints(
            folder, model, optimizer, scheduler, asdict(config), dict(metadata or {}), rank == 0
        )
        progress, history = resume(checkpoints)
        net = _ModelWithLoss(model, objective)
        if world > 1:
            net = DistributedDataParallel(net, find_unused_parameters=not objective.uses_encoder)
        if stop_reason(progress, config):  # resumed a run that had already ended
            return history
        setup = _Setup(model, net, optimizer, scheduler, checkpoints, device, rank, world)
        _loop(
            setup, objective, list(examples), config, valid, evaluate, callbacks, progress, history
        )
        return history


class _Setup(NamedTuple):
    """What ``train`` sets up for its loop: the model (and ``net``, model and loss, under DDP
    wrapped for all processes), optimiser and schedule, the run folder's checkpoints, and where
    this process runs (device, rank among ``world`` processes)."""

    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    checkpoints: checkpoint.TrainingCheckpoints
    device: torch.device
    rank: int
    world: int


def _loop(
    setup: _Setup,
    objective: Objective,
    examples: Sequence[Example],
    config: TrainConfig,
    valid: Sequence[Example] | None,
    evaluate: Evaluator | None,
    callbacks: Sequence[StepCallback],
    progress: Progress,
    history: History,
) -> None:
    """Train from ``progress`` until ``stop_reason`` gives one, adding to ``history``: step, log,
    evaluate and checkpoint, one optimiser step at a time, one epoch after another."""
    model, net, optimizer, scheduler, checkpoints, device, rank, world = setup
    bar = progress_bar(config, progress, rank == 0, objective.name)
    sizes, batches = [example.size for example in examples], None
    model.train()
    while True:
        progress.stopped = stop_reason(progress, config)
        if progress.stopped:
            break
        if batches is None:
            batches = epoch_batches(sizes, config, progress.epoch, rank, world)
        # false only on resuming from a checkpoint written at an epoch's last step
        if progress.batch + config.accumulate <= len(batches):
            started = time.perf_counter()
            first = progress.batch
            group = batches[first : first + config.accumulate]
            names = [
                f"{config.seed}/{progress.epoch}/{first + k}/{rank}" for k in range(len(group))
            ]
            inputs = corrupted_batches(examples, objective, group, names, device)
            stats = optimisation_step(net, optimizer, scheduler, inputs, progress.step, config)
            seconds = time.perf_counter() - started
            progress.step, progress.batch = progress.step + 1, progress.batch + config.accumulate
            progress.elapsed += seconds
            progress.tokens += stats["tokens"] + stats["src_tokens"]
            for callback in callbacks:
                callback(progress.step, model)
            if progress.step % config.log_every == 0 or progress.step == 1:
                record = step_record(progress, stats, scheduler.get_last_lr()[0], world, seconds)
                history.steps.append(record)
                bar.set_postfix(loss=f"{record['nll']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update(1)
            if valid is not None and progress.step % config.eval_every == 0:
                metrics = evaluation(model, objective, valid, evaluate, device)
                record_evaluation(metrics, config, progress, history, checkpoints)
            if progress.step % config.checkpoint_every == 0:
                checkpoints.save_last(asdict(progress), history.to_dict())
        if progress.batch + config.accumulate > len(batches):  # the epoch is used up
            progress.epoch, progress.batch, batches = progress.epoch + 1, 0, None
    bar.close()
    if valid is not None and progress.step % config.eval_every:  # the last steps' evaluation
        metrics = evaluation(model, objective, valid, evaluate, device)
        record_evaluation(metrics, config, progress, history, checkpoints)
    checkpoints.save_last(asdict(progress), history.to_dict())
