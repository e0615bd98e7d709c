"""Real inputs for the exercise checks: Multi30k validation captions, as text, piece ids and
batches.

Checks compare a learner's function with the library's on these inputs, so a learner's bug shows up
on the same captions the notebooks use. Everything is cached per process: a check costs no more
than the function it checks.
"""

from __future__ import annotations

from functools import cache

import torch

from .. import data
from ..batching import Batch, collate
from ..models import Seq2Seq, model_config
from ..objectives import monolingual_examples
from ..pipeline import course_tokenizer
from ..subwords import Tokenizer


@cache
def tokenizer() -> Tokenizer:
    """The course's joint SentencePiece vocabulary."""
    return course_tokenizer()


@cache
def captions(lang: str = "en", n: int = 1000) -> tuple[str, ...]:
    """The first ``n`` task-2 validation captions of ``lang``."""
    return tuple(data.load_monolingual(lang, "val")[:n])


@cache
def caption_ids(lang: str = "en", n: int = 1000) -> tuple[tuple[int, ...], ...]:
    """The same captions as lists of piece ids (no tag, no EOS): what ``tmtlib.noise`` corrupts."""
    return tuple(tuple(ids) for ids in tokenizer().encode(list(captions(lang, n))) if ids)


def caption_batch(lang: str = "en", n: int = 16) -> Batch:
    """A padded reconstruction batch of ``n`` captions (source = target), as the autoencoders train
    on."""
    return collate(monolingual_examples(tokenizer(), list(captions(lang, n)), lang))


def tiny_model(seed: int = 0, **overrides) -> Seq2Seq:
    """A freshly initialised ``tiny`` Transformer over the course vocabulary, seeded without
    touching the caller's random state."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Seq2Seq(model_config("tiny", tokenizer().vocab_size, **overrides))
