"""Examples, padded batches and token-bucketed batching.

Every objective trains on the same kind of example: an optional source sequence and a target
sequence, both as piece ids without EOS, plus the id of the decoder's start token (the target
language tag). ``collate`` builds the tensors the model reads::

    src     = [x_1 .. x_n, EOS]          (absent for a language model)
    tgt_in  = [<2xx>, y_1 .. y_m]        (teacher forcing: the decoder sees the gold prefix)
    tgt_out = [y_1 .. y_m, EOS]          (what it must predict at each position)

``token_batches`` groups sentences of similar length so little compute is spent on padding, and
bounds each batch by tokens (padded size), not by sentences, as in Vaswani et al. (2017).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .subwords import EOS_ID, PAD_ID


@dataclass(frozen=True)
class Example:
    """One training example in piece ids (without EOS)."""

    src: tuple[int, ...] | None
    tgt: tuple[int, ...]
    start_id: int  # the decoder's first input: the target-language tag

    @property
    def size(self) -> int:
        """Padded cost of this example in a batch: its longer side, EOS included."""
        return max(len(self.src or ()), len(self.tgt)) + 1


@dataclass
class Batch:
    """Padded tensors for one step; ``*_tokens`` count real (non-pad) tokens."""

    src: torch.Tensor | None  # [B, S]
    tgt_in: torch.Tensor  # [B, T]
    tgt_out: torch.Tensor  # [B, T]
    src_tokens: int
    tgt_tokens: int

    def to(self, device: torch.device | str) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(
            move(self.src), move(self.tgt_in), move(self.tgt_out), self.src_tokens, self.tgt_tokens
        )

    @property
    def size(self) -> int:
        return self.tgt_in.shape[0]


def pad(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> torch.Tensor:
    """Right-pad integer sequences into a LongTensor [B, max_len]."""
    width = max(1, max(len(s) for s in sequences))
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def collate(examples: Sequence[Example]) -> Batch:
    """Build src / tgt_in / tgt_out tensors from examples (see the module docstring)."""
    has_src = [e.src is not None for e in examples]
    if any(has_src) and not all(has_src):
        raise ValueError("a batch mixes examples with and without a source sentence")
    src = pad([(*e.src, EOS_ID) for e in examples]) if all(has_src) else None
    tgt_in = pad([(e.start_id, *e.tgt) for e in examples])
    tgt_out = pad([(*e.tgt, EOS_ID) for e in examples])
    src_tokens = 0 if src is None else int((src != PAD_ID).sum())
    return Batch(src, tgt_in, tgt_out, src_tokens, int((tgt_out != PAD_ID).sum()))


def token_batches(
    sizes: Sequence[int], max_tokens: int, *, shuffle: bool = True, seed: int = 0
) -> list[list[int]]:
    """Group example indices into batches of at most ``max_tokens`` padded tokens.

    Indices are sorted by size (ties broken randomly when shuffling), cut greedily into batches
    whose ``len(batch) * longest`` stays within ``max_tokens``, and the batch order is shuffled.
    The result depends only on ``sizes``, ``max_tokens`` and ``seed``: training that resumes at
    batch k of an epoch sees the same batches as an uninterrupted run.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    rng = random.Random(seed)
    keys = [rng.random() for _ in sizes] if shuffle else [0.0] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], keys[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = max(sizes[index], sizes[current[-1]] if current else 0)
        if current and longest * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def shard(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This rank's share of an epoch's batches, the same count on every rank (for DDP)."""
    per_rank = len(batches) // world_size
    if per_rank == 0:
        raise ValueError(
            f"{len(batches)} batches cannot feed {world_size} processes: use smaller batches"
        )
    return batches[rank : per_rank * world_size : world_size]
