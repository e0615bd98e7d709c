"""Corruptions for denoising autoencoders: the "noise" in a DAE's ``x̃ → x``.

BART (Lewis et al. 2020) pretrains by reconstructing text from token masking, token deletion and
text infilling; mBART (Liu et al. 2020) applies infilling to whole words in many languages; Lample
et al. (2018, "Unsupervised machine translation using monolingual corpora only") corrupt with word
dropout and a local shuffle. This module implements those corruptions on lists of piece ids.

Conventions shared by every function:

* ``tokens`` are content ids only, without BOS/EOS or a language tag: callers add those after
  noising, so the markers are never masked, dropped or moved.
* ``rng`` is a ``random.Random`` seeded by the caller, so a training run is reproducible and can
  resume mid-epoch with the same corruptions.
* The input is never mutated; a new list is returned.
* ``word_starts`` (from ``Tokenizer.word_starts``), when given, makes a corruption act on whole
  words instead of pieces. A word is a piece flagged True plus the False pieces after it (leading
  False pieces form a word of their own). Internally every corruption therefore works on *units*:
  single pieces, or whole words.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Unit = list[int]


def _units(tokens: Sequence[int], word_starts: Sequence[bool] | None) -> list[Unit]:
    """Split ``tokens`` into the units noise acts on: one per piece, or one per word."""
    if word_starts is None:
        return [[int(t)] for t in tokens]
    if len(word_starts) != len(tokens):
        raise ValueError(f"word_starts has {len(word_starts)} flags for {len(tokens)} tokens")
    units: list[Unit] = []
    for token, starts in zip(tokens, word_starts):
        if starts or not units:
            units.append([])
        units[-1].append(int(token))
    return units


def _flatten(units: Sequence[Unit]) -> list[int]:
    return [token for unit in units for token in unit]


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], not {p}")


def _check_lambda(lam: float) -> None:
    if not 0.0 < lam <= 30.0:
        raise ValueError(f"poisson_lambda must lie in (0, 30], not {lam}")


# --- the corruptions, on units ------------------------------------------------------------------


def _mask(units: list[Unit], p: float, mask_id: int, rng: random.Random) -> list[Unit]:
    return [[mask_id] * len(unit) if rng.random() < p else list(unit) for unit in units]


def _delete(units: list[Unit], p: float, rng: random.Random) -> list[Unit]:
    kept = [list(unit) for unit in units if rng.random() >= p]
    if units and not kept:
        kept = [list(rng.choice(units))]
    return kept


def _shuffle(units: list[Unit], k: int, rng: random.Random) -> list[Unit]:
    keys = [i + rng.random() * (k + 1) for i in range(len(units))]
    order = sorted(range(len(units)), key=keys.__getitem__)  # stable: ties keep index order
    return [list(units[i]) for i in order]


def _infill(
    units: list[Unit], ratio: float, mask_id: int, rng: random.Random, poisson_lambda: float
) -> list[Unit]:
    lengths = _span_lengths(_round_randomly(ratio * len(units), rng), poisson_lambda, rng)
    rng.shuffle(lengths)  # the truncated last span should not always land rightmost
    n_items = len(lengths) + len(units) - sum(lengths)  # spans and untouched units, interleaved
    span_items = set(rng.sample(range(n_items), len(lengths)))
    out: list[Unit] = []
    spans, position = iter(lengths), 0
    for item in range(n_items):
        if item in span_items:
            out.append([mask_id])
            position += next(spans)
        else:
            out.append(list(units[position]))
            position += 1
    return out


def sample_poisson(lam: float, rng: random.Random) -> int:
    """One draw from Poisson(``lam``) by Knuth's multiplication method: O(lam), fine for
    lam ≲ 30."""
    _check_lambda(lam)
    threshold, k, product = math.exp(-lam), 0, rng.random()
    while product > threshold:
        k += 1
        product *= rng.random()
    return k


def _span_lengths(total: int, lam: float, rng: random.Random) -> list[int]:
    """Poisson(``lam``) span lengths, drawn until they cover ``total`` units; the last is cut to
    fit."""
    lengths: list[int] = []
    covered = 0
    while covered < total:
        lengths.append(sample_poisson(lam, rng))
        covered += lengths[-1]
    if lengths:
        lengths[-1] -= covered - total
    return lengths


def _round_randomly(x: float, rng: random.Random) -> int:
    """``floor(x)`` or ``ceil(x)``, with the chance that makes the expectation exactly ``x``."""
    whole = math.floor(x)
    return whole + (rng.random() < x - whole)


# --- the public corruptions, on token lists -------------------------------------------------------


def mask_tokens(
    tokens: Sequence[int],
    p: float,
    mask_id: int,
    rng: random.Random,
    word_starts: Sequence[bool] | None = None,
) -> list[int]:
    """Replace each token (or word) by ``mask_id`` with probability ``p`` (BART token masking).

    As in BART each masked token becomes one mask token, so the length is preserved; in word mode
    every piece of a chosen word is masked (whole-word masking), never a fraction of a word.
    """
    _check_probability("mask p", p)
    return _flatten(_mask(_units(tokens, word_starts), p, mask_id, rng))


def delete_tokens(
    tokens: Sequence[int], p: float, rng: random.Random, word_starts: Sequence[bool] | None = None
) -> list[int]:
    """Drop each token (or word) with probability ``p``, keeping the order (BART token deletion;
    Lample et al. 2018 word dropout). A non-empty input never comes back empty: if every unit was
    dropped, one unit chosen uniformly is kept, so the encoder always sees something."""
    _check_probability("delete p", p)
    return _flatten(_delete(_units(tokens, word_starts), p, rng))


def infill_spans(
    tokens: Sequence[int],
    ratio: float,
    mask_id: int,
    rng: random.Random,
    poisson_lambda: float = 3.0,
    word_starts: Sequence[bool] | None = None,
) -> list[int]:
    """BART text infilling: replace spans covering about ``ratio`` of the tokens by one mask each.

    Span lengths are drawn from Poisson(``poisson_lambda``) until they cover ``ratio · n`` units
    (rounded randomly so the expectation is exact; the last span is shortened to fit). Each span,
    including a 0-length one, which inserts a mask, becomes ONE ``mask_id``, so the model must also
    predict how many tokens are missing. Spans never overlap: they are placed by a uniformly random
    interleaving of the spans with the untouched units (fairseq lets spans overlap instead, which
    covers slightly less than asked). Two spans may touch, giving adjacent masks. With
    ``word_starts``, lengths count whole words, as in mBART (Liu et al. 2020); otherwise pieces.
    """
    _check_probability("infill ratio", ratio)
    return _flatten(_infill(_units(tokens, word_starts), ratio, mask_id, rng, poisson_lambda))


def shuffle_locally(
    tokens: Sequence[int], k: int, rng: random.Random, word_starts: Sequence[bool] | None = None
) -> list[int]:
    """Permute tokens (or whole words) so that none moves more than ``k`` places (Lample et al.
    2018).

    Unit ``i`` gets the key ``i + U(0, k+1)`` and units are sorted by key. The bound holds exactly:
    every ``j ≥ i + k + 1`` has ``key_j ≥ j ≥ i + k + 1 > key_i`` and so stays after ``i``; every
    ``j ≤ i - k - 1`` has ``key_j < j + k + 1 ≤ i ≤ key_i`` and so stays before it (a tie, possible
    only by float rounding, keeps index order because the sort is stable). Hence only the ``2k``
    neighbours within ``k`` places can change sides, and ``|σ(i) − i| ≤ k``. ``k = 0`` is the
    identity.
    """
    if k < 0:
        raise ValueError(f"shuffle k must be >= 0, not {k}")
    return _flatten(_shuffle(_units(tokens, word_starts), k, rng))


# --- configurations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseConfig:
    """Which corruptions a denoising objective applies, and how strongly (0 switches one off)."""

    mask_p: float = 0.0
    delete_p: float = 0.0
    infill_ratio: float = 0.0
    poisson_lambda: float = 3.0
    shuffle_k: int = 0

    def __post_init__(self) -> None:
        for name in ("mask_p", "delete_p", "infill_ratio"):
            _check_probability(name, getattr(self, name))
        _check_lambda(self.poisson_lambda)
        if self.shuffle_k < 0:
            raise ValueError(f"shuffle_k must be >= 0, not {self.shuffle_k}")

    @classmethod
    def none(cls) -> NoiseConfig:
        """No corruption: a plain autoencoder."""
        return cls()

    @classmethod
    def bart(cls) -> NoiseConfig:
        """BART's best single-sentence noise: text infilling of 30% of tokens with Poisson(3) spans
        (Lewis et al. 2020, §3.1 and the BART-large setup). BART also permutes sentences, which has
        no meaning for the course's one-sentence examples, so it is left out."""
        return cls(infill_ratio=0.3, poisson_lambda=3.0)

    @classmethod
    def lample(cls) -> NoiseConfig:
        """The noise of Lample et al. (2018): word dropout with p = 0.1 and a local shuffle,
        k = 3."""
        return cls(delete_p=0.1, shuffle_k=3)


def apply_noise(
    tokens: Sequence[int],
    config: NoiseConfig,
    rng: random.Random,
    mask_id: int,
    word_starts: Sequence[bool] | None = None,
) -> list[int]:
    """Apply the enabled corruptions of ``config`` in the fixed order
    shuffle → delete → infill → mask.

    Shuffling comes first so its displacement bound refers to the original positions; deletion
    precedes infilling so the infill ratio is a share of what is left; masking comes last and so
    picks among the surviving tokens (masks already inserted stay masks). Disabled corruptions
    draw nothing from ``rng``; with everything off this is the identity. In word mode, words stay
    intact through the whole chain (a mask inserted by infilling counts as a word of its own).
    """
    units = _units(tokens, word_starts)
    if config.shuffle_k:
        units = _shuffle(units, config.shuffle_k, rng)
    if config.delete_p:
        units = _delete(units, config.delete_p, rng)
    if config.infill_ratio:
        units = _infill(units, config.infill_ratio, mask_id, rng, config.poisson_lambda)
    if config.mask_p:
        units = _mask(units, config.mask_p, mask_id, rng)
    return _flatten(units)


def describe(config: NoiseConfig) -> str:
    """One line for humans, e.g. ``shuffle k=3 → delete 10% → infill 30% (Poisson λ=3)``."""
    steps = []
    if config.shuffle_k:
        steps.append(f"shuffle k={config.shuffle_k}")
    if config.delete_p:
        steps.append(f"delete {config.delete_p * 100:g}%")
    if config.infill_ratio:
        steps.append(f"infill {config.infill_ratio * 100:g}% (Poisson λ={config.poisson_lambda:g})")
    if config.mask_p:
        steps.append(f"mask {config.mask_p * 100:g}%")
    return " → ".join(steps) if steps else "no noise"
