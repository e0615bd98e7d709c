"""Moving pretrained weights into a translator, and the ways to fine-tune them afterwards.

Transfer learning for NMT initialises a translation model from one trained on something else:
a parent translation model for another language pair (Zoph et al. 2016, "Transfer learning for
low-resource neural machine translation"), language models for the encoder and decoder
(Ramachandran et al. 2017, "Unsupervised pretraining for sequence to sequence learning"), or a
multilingual denoising autoencoder (Liu et al. 2020, "Multilingual denoising pre-training for
neural machine translation", mBART). ``transfer`` copies the selected *parts* of a source state
dict into a ``tmtlib.models.Seq2Seq`` and reports what was loaded, what kept its fresh
initialisation, and what in the source went unused.

Fine-tuning then decides which parts learn, and how fast: ``freeze``/``unfreeze``, per-part
learning rates with ``parameter_groups`` (discriminative fine-tuning) and ``GradualUnfreezing``
(both from Howard & Ruder 2018, "Universal language model fine-tuning for text classification",
ULMFiT).

The parts, by parameter name (see ``tmtlib.models``):

* ``embeddings``: ``embed.*`` (shared by encoder, decoder and the tied output projection) and
  ``positions.*`` (learned positions only; sinusoidal ones are not in the state dict);
* ``encoder``: ``encoder.*``;
* ``cross_attention``: ``decoder.layers.{i}.cross_attn.*`` and ``decoder.layers.{i}.cross_norm.*``
  (kept apart because a language model's decoder never trains them);
* ``decoder``: the rest of ``decoder.*``;
* ``latent``: ``latent.*``, the VAE heads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import checkpoint

PARTS = ("embeddings", "encoder", "decoder", "cross_attention", "latent")
STATUSES = ("loaded", "initialised", "ignored")
DEFAULT_PARTS = ("embeddings", "encoder", "decoder", "cross_attention")
_EMBEDDING = "embed.weight"  # its rows are the vocabulary
Source = str | os.PathLike | Mapping | nn.Module  # what ``transfer`` copies from


class TransferError(ValueError):
    """Pretrained weights that cannot go into this model; the message says which tensor and why."""


def part_of(name: str) -> str:
    """The part (one of ``PARTS``) that the parameter or buffer ``name`` belongs to."""
    fields = name.split(".")
    head = fields[0]
    if head in ("embed", "positions"):
        return "embeddings"
    if head in ("encoder", "latent"):
        return head
    if head == "decoder":
        in_layer = len(fields) > 3 and fields[1] == "layers"
        return (
            "cross_attention"
            if in_layer and fields[3] in ("cross_attn", "cross_norm")
            else "decoder"
        )
    raise ValueError(f"{name!r} belongs to no part of a tmtlib Seq2Seq (parts: {', '.join(PARTS)})")


def _check_parts(
    parts: str | Iterable[str], error: type[ValueError] = ValueError
) -> tuple[str, ...]:
    """``parts`` as a tuple of known part names (a single string is one part, not its letters)."""
    parts = (parts,) if isinstance(parts, str) else tuple(parts)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise error(
            f"unknown part(s) {', '.join(map(repr, unknown))}: choose from {', '.join(PARTS)}"
        )
    return parts


# --- the report -----------------------------------------------------------------------------------


@dataclass
class TransferReport:
    """What ``transfer`` did, tensor by tensor.

    ``loaded``: copied from the source. ``initialised``: kept the model's fresh initialisation,
    because its part was not selected or the source lacks it. ``ignored``: in the source but not
    used, because its part was not selected or the model lacks it (e.g. a VAE's ``latent.*`` heads
    going into a plain translator). ``sizes`` and ``source_sizes`` hold the number of parameters
    of each model and source tensor (they can differ in a part that was not selected).
    """

    loaded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict, repr=False)
    source_sizes: dict[str, int] = field(default_factory=dict, repr=False)

    def by_part(self) -> dict[str, dict[str, int]]:
        """Per part (in ``PARTS`` order, parts with no tensor left out): the number of tensors per
        status (``"loaded"``, ...) and their numbers of parameters (``"loaded_params"``, ...)."""
        counts: dict[str, dict[str, int]] = {}
        for status in STATUSES:
            sizes = self.source_sizes if status == "ignored" else self.sizes
            for name in getattr(self, status):
                row = counts.setdefault(part_of(name), {key: 0 for key in _count_keys()})
                row[status] += 1
                row[f"{status}_params"] += sizes.get(name, 0)
        return {part: counts[part] for part in PARTS if part in counts}

    def summary(self) -> str:
        """A table for notebooks: per part, tensors and millions of parameters in each status."""
        rows = self.by_part()
        total = {key: sum(row[key] for row in rows.values()) for key in _count_keys()}
        lines = [f"{'part':<16}" + "".join(f"{status:>18}" for status in STATUSES)]
        for part, row in [*rows.items(), ("total", total)]:
            cells = (f"{row[status]} ({row[f'{status}_params'] / 1e6:.2f}M)" for status in STATUSES)
            lines.append(f"{part:<16}" + "".join(f"{cell:>18}" for cell in cells))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _count_keys() -> list[str]:
    return [*STATUSES, *(f"{status}_params" for status in STATUSES)]


# --- reading the source ---------------------------------------------------------------------------


def _read_checkpoint(path: str | os.PathLike) -> object:
    """Read a checkpoint file; a missing or unreadable file is a clear TransferError."""
    try:
        return checkpoint.read(path)
    except checkpoint.CheckpointError as error:
        raise TransferError(str(error)) from None


def _source_weights(source: Source) -> tuple[Mapping[str, Tensor], str | None]:
    """The source's state dict and vocabulary fingerprint (None when unknown), read-only."""
    if isinstance(source, nn.Module):
        source = source.state_dict()
    loaded = _read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(loaded, Mapping):
        raise TransferError(f"expected a checkpoint or a state dict, got {type(loaded).__name__}")
    is_checkpoint = "model" in loaded
    state = loaded["model"] if is_checkpoint else loaded
    if not isinstance(state, Mapping):
        raise TransferError(
            f"the checkpoint's 'model' is a {type(state).__name__}, not a state dict"
        )
    for name, value in state.items():
        if not isinstance(value, Tensor):
            raise TransferError(
                f"source entry {name!r} is a {type(value).__name__}, not a tensor: "
                "pass a checkpoint (with 'model') or a state dict"
            )
        try:
            part_of(name)
        except ValueError as error:
            raise TransferError(f"source tensor {error}; is this a tmtlib checkpoint?") from None
    return state, (loaded.get("tokenizer") if is_checkpoint else None)


def _check_vocabulary(
    state: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    source_fingerprint: str | None,
    tokenizer_fingerprint: str | None,
) -> None:
    """Refuse embeddings trained on another vocabulary: row i must mean the same piece in both.
    The message names the tensor and both vocabulary sizes (and both tokenizers when known)."""
    rows = [
        len(weights[_EMBEDDING]) if _EMBEDDING in weights else "?" for weights in (state, target)
    ]
    sizes = f"the source has a vocabulary of {rows[0]} pieces, this model {rows[1]}"
    if source_fingerprint and tokenizer_fingerprint and source_fingerprint != tokenizer_fingerprint:
        raise TransferError(
            f"vocabulary mismatch on {_EMBEDDING}: {sizes}, from another tokenizer "
            f"(fingerprint {source_fingerprint}, this model's {tokenizer_fingerprint})"
        )
    if rows[0] != rows[1] and "?" not in rows:
        raise TransferError(f"vocabulary mismatch on {_EMBEDDING}: {sizes}")


def _check_shapes(pairs: Iterable[tuple[str, Tensor, Tensor]]) -> None:
    """Refuse every selected tensor whose shapes differ, naming each one."""
    problems = [
        f"{name}: source {tuple(src.shape)} vs model {tuple(dst.shape)}"
        for name, src, dst in pairs
        if src.shape != dst.shape
    ]
    if problems:
        raise TransferError(
            "shape mismatch (different d_model/d_ff/heads/latent_dim?):\n  " + "\n  ".join(problems)
        )


# --- transfer -------------------------------------------------------------------------------------


def transfer(
    model: nn.Module,
    source: Source,
    parts: str | Sequence[str] = DEFAULT_PARTS,
    *,
    tokenizer_fingerprint: str | None = None,
) -> TransferReport:
    """Copy the ``parts`` of ``source`` into ``model`` in place, and report what happened.

    ``source`` is a checkpoint path, a checkpoint dict (with ``"model"`` and maybe ``"tokenizer"``),
    a plain state dict or a model; it is never modified. Tensors of a selected part that the source
    lacks (e.g. a parent with fewer decoder layers) keep their initialisation, and source tensors
    the model lacks (e.g. VAE heads) are ignored: both are reported, not errors, because mixing
    architectures that way is the point of transfer (Zoph et al. 2016; Ramachandran et al. 2017; Liu
    et al. 2020). Weights that would be silently wrong are refused with a TransferError:

    * when ``"embeddings"`` are selected, a vocabulary mismatch (different tokenizer fingerprints,
      when both are known, or a different number of embedding rows): the rows would mean other
      pieces. Without embeddings, only the layers move and a vocabulary change is allowed;
    * a shape mismatch on any selected tensor both sides have;
    * unknown part names, and a missing or unreadable checkpoint file.

    Nothing is copied unless every check passes.
    """
    parts = _check_parts(parts, TransferError)
    state, source_fingerprint = _source_weights(source)
    target = model.state_dict(keep_vars=True)
    if "embeddings" in parts:
        _check_vocabulary(state, target, source_fingerprint, tokenizer_fingerprint)
    selected = [
        (name, state[name], tensor)
        for name, tensor in target.items()
        if part_of(name) in parts and name in state
    ]
    _check_shapes(selected)

    with torch.no_grad():
        for _, src, dst in selected:
            dst.copy_(src)
    loaded = {name for name, _, _ in selected}
    return TransferReport(
        loaded=[name for name in target if name in loaded],
        initialised=[name for name in target if name not in loaded],
        ignored=[name for name in state if name not in loaded],
        sizes={name: tensor.numel() for name, tensor in target.items()},
        source_sizes={name: tensor.numel() for name, tensor in state.items()},
    )


# --- fine-tuning strategies -----------------------------------------------------------------------


def _parameters_of(model: nn.Module, parts: Iterable[str]) -> Iterator[nn.Parameter]:
    """The model's parameters in ``parts`` (the tied embedding once: it has one name)."""
    parts = set(parts)
    return (param for name, param in model.named_parameters() if part_of(name) in parts)


def _set_trainable(model: nn.Module, parts: str | Sequence[str], trainable: bool) -> int:
    count = 0
    for param in _parameters_of(model, _check_parts(parts)):
        param.requires_grad_(trainable)
        count += param.numel()
    return count


def freeze(model: nn.Module, parts: str | Sequence[str]) -> int:
    """Stop training ``parts`` (``requires_grad = False``); returns the number of parameters frozen.

    The output projection is tied to the embedding (Press & Wolf 2017): freezing ``"embeddings"``
    freezes the output layer too. Freezing the encoder of a pretrained model while the fresh
    parts learn protects it from the large early gradients of random layers (Howard & Ruder 2018).
    """
    return _set_trainable(model, parts, False)


def unfreeze(model: nn.Module, parts: str | Sequence[str]) -> int:
    """Train ``parts`` again (``requires_grad = True``); returns the number of parameters unfrozen.
    Unfreezing ``"embeddings"`` unfreezes the tied output projection too."""
    return _set_trainable(model, parts, True)


def trainable_summary(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Per part present in ``model``: (trainable parameters, all parameters)."""
    summary: dict[str, tuple[int, int]] = {}
    for name, param in model.named_parameters():
        part = part_of(name)
        trainable, total = summary.get(part, (0, 0))
        summary[part] = (
            trainable + (param.numel() if param.requires_grad else 0),
            total + param.numel(),
        )
    return {part: summary[part] for part in PARTS if part in summary}


def parameter_groups(
    model: nn.Module,
    lr: float,
    part_lrs: Mapping[str, float] | None = None,
    weight_decay: float = 0.01,
    *,
    include_frozen: bool = False,
) -> list[dict]:
    """AdamW parameter groups with a learning rate per part, for ``torch.optim.AdamW(groups)``.

    Discriminative fine-tuning (Howard & Ruder 2018): pretrained parts can learn more slowly than
    fresh ones, e.g. ``part_lrs={"embeddings": lr / 10, "encoder": lr / 3}``; parts not named get
    ``lr``. Each part gives up to two groups, both carrying ``"name": part`` for schedulers and
    loggers: matrices with ``weight_decay``, and 1-D parameters (biases, LayerNorm gains and
    shifts) without: decay is meant to keep weight matrices small (Loshchilov & Hutter 2019,
    AdamW), and BERT (Devlin et al. 2019) exempts these the same way. The embedding and learned
    positions are matrices and are decayed. Every included parameter is in exactly one group.

    Only trainable parameters are included, unless ``include_frozen``: then frozen ones are too,
    so that parts unfrozen later (``GradualUnfreezing``) are already in the optimizer. That is
    safe because AdamW skips parameters whose ``.grad`` is None, and a frozen parameter never
    gets one (``optimizer.zero_grad()`` resets gradients to None by default): it is neither
    updated nor decayed until it is unfrozen.
    """
    part_lrs = dict(part_lrs or {})
    _check_parts(part_lrs)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad or include_frozen:
            groups.setdefault((part_of(name), param.ndim >= 2), []).append(param)
    return [
        {
            "name": part,
            "params": groups[part, decayed],
            "lr": part_lrs.get(part, lr),
            "weight_decay": weight_decay if decayed else 0.0,
        }
        for part in PARTS
        for decayed in (True, False)
        if (part, decayed) in groups
    ]


class GradualUnfreezing:
    """ULMFiT's gradual unfreezing (Howard & Ruder 2018): start with some parts frozen, and
    unfreeze them on a schedule so the pretrained weights are disturbed only once the fresh parts
    have settled: ``[(1000, ["encoder"]), (2000, ["embeddings"])]`` trains a fresh decoder alone
    first, then the pretrained encoder, and the embeddings last.

    Call ``initial(model)`` before training and ``on_step(step, model)`` after each optimizer
    step; build the optimizer with ``parameter_groups(..., include_frozen=True)`` so the
    unfrozen parameters are already in it.
    """

    def __init__(self, schedule: Sequence[tuple[int, Sequence[str]]]):
        self.schedule = sorted((int(step), _check_parts(parts)) for step, parts in schedule)
        parts = [part for _, step_parts in self.schedule for part in step_parts]
        repeated = sorted({part for part in parts if parts.count(part) > 1})
        if repeated:
            raise ValueError(f"part(s) {', '.join(repeated)} appear more than once in the schedule")
        self.parts = tuple(parts)
        self._pending = list(self.schedule)

    def initial(self, model: nn.Module) -> int:
        """Freeze every part in the schedule (and restart it); returns the parameters frozen."""
        self._pending = list(self.schedule)
        return freeze(model, self.parts)

    def on_step(self, step: int, model: nn.Module) -> list[str]:
        """Unfreeze the parts due at or before ``step`` and not unfrozen yet (so a run resumed
        at a later step catches up); returns the parts just unfrozen."""
        due = [part for at, parts in self._pending if at <= step for part in parts]
        self._pending = [(at, parts) for at, parts in self._pending if at > step]
        unfreeze(model, due)
        return due
