"""Subword tokenisation with SentencePiece (Kudo & Richardson 2018).

One joint vocabulary serves every language of the course (en, de, fr, cs), so a model trained on
one pair can hand its embeddings to another. Ids 0-3 are reserved (pad, unk, bos, eos); then come
the language tags ``<2en>``, ``<2de>``, ... that tell the decoder which language to produce, and
``<mask>`` for the denoising objectives. Byte fallback makes every character encodable, so
``decode(encode(x)) == normalize(x)`` holds for any text.

Trained models are cached under ``data/cache/spm`` by a hash of their settings and training text,
so a second call with the same arguments loads instead of training; processes that ask for the same
model at once (two notebooks, two test workers) train it once, the others wait for it under the
cache folder's lock. This module knows no corpus
(``data`` imports ``normalize`` from it); the course's own vocabulary, trained on Multi30k, is
``pipeline.course_tokenizer``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import sentencepiece as spm

from . import checkpoint, settings

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
LANGUAGES = ("en", "de", "fr", "cs")
MASK_PIECE = "<mask>"


def lang_tag(lang: str) -> str:
    """The piece that asks the decoder for ``lang``, e.g. ``<2de>``."""
    return f"<2{lang}>"


SPECIAL_PIECES = tuple(lang_tag(lang) for lang in LANGUAGES) + (MASK_PIECE,)
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC-normalise and collapse whitespace: the form that round-trips exactly."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


@dataclass(frozen=True)
class TokenizerSettings:
    """Everything that determines a trained SentencePiece model (hashed for the cache key)."""

    vocab_size: int = 8000
    model_type: str = "unigram"  # or "bpe"
    character_coverage: float = 1.0
    max_sentence_length: int = 4192  # bytes; longer training lines are skipped by SentencePiece


class Tokenizer:
    """A loaded SentencePiece model with the course's special ids."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        self.vocab_size = self.sp.get_piece_size()
        self.mask_id = self.sp.piece_to_id(MASK_PIECE)
        self._lang_ids = {lang: self.sp.piece_to_id(lang_tag(lang)) for lang in LANGUAGES}
        self.special_ids = frozenset(
            {PAD_ID, BOS_ID, EOS_ID, self.mask_id, *self._lang_ids.values()}
        )

    def lang_id(self, lang: str) -> int:
        """Id of the ``<2xx>`` tag for ``lang``; a clear error for a language outside the
        vocabulary."""
        if lang not in self._lang_ids:
            raise ValueError(
                f"unknown language {lang!r}: this vocabulary knows {', '.join(LANGUAGES)}"
            )
        return self._lang_ids[lang]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Normalised texts to piece ids, without bos/eos (callers add what their objective
        needs)."""
        return self.sp.encode([normalize(t) for t in texts], out_type=int)

    def decode(self, ids: Iterable[Sequence[int]]) -> list[str]:
        """Piece ids back to text; pad, bos, eos, mask and language tags are dropped."""
        kept = [[int(i) for i in seq if int(i) not in self.special_ids] for seq in ids]
        return self.sp.decode(kept) if kept else []  # SentencePiece decodes an empty batch to ""

    def pieces(self, text: str) -> list[str]:
        """The subword pieces of one text, for showing what the model sees."""
        return self.sp.encode(normalize(text), out_type=str)

    def word_starts(self, ids: Sequence[int]) -> list[bool]:
        """For each id, whether its piece begins a word (starts with ``▁``): word-level noise uses
        it."""
        return [self.sp.id_to_piece(int(i)).startswith("\u2581") for i in ids]

    def fingerprint(self) -> str:
        """Hash of the model file: checkpoints store it to refuse a different vocabulary."""
        return hashlib.sha256(self.model_file.read_bytes()).hexdigest()[:16]

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_file.name}, vocab_size={self.vocab_size})"


def _cache_key(texts: Sequence[str], options: TokenizerSettings) -> str:
    digest = hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode())
    digest.update(json.dumps(SPECIAL_PIECES).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def train_tokenizer(
    texts: Sequence[str],
    options: TokenizerSettings = TokenizerSettings(),
    cache: Path | None = None,
) -> Tokenizer:
    """Train (or load from the cache) a SentencePiece model on ``texts``.

    ``texts`` is the training text of every language the vocabulary must serve; sentences are
    normalised first. The model file lands in ``cache`` (default ``data/cache/spm``) under a name
    derived from the settings and the text, so identical calls share one model.
    """
    if options.model_type not in {"unigram", "bpe"}:
        raise ValueError(f"model_type must be 'unigram' or 'bpe', not {options.model_type!r}")
    lines = [line for line in (normalize(t) for t in texts) if line]
    if not lines:
        raise ValueError("cannot train a tokenizer on no text: every line was empty")
    folder = cache or settings.cache_dir("spm")
    folder.mkdir(parents=True, exist_ok=True)
    model_file = (
        folder / f"{options.model_type}{options.vocab_size}-{_cache_key(lines, options)}.model"
    )
    if not model_file.exists():
        # another process training it: wait, then load
        with checkpoint.run_folder_lock(folder, wait=True):
            if not model_file.exists():
                _train_to(model_file, lines, options)
    return Tokenizer(model_file)


def _train_to(model_file: Path, lines: list[str], options: TokenizerSettings) -> None:
    """Run the SentencePiece trainer and write the model atomically (a temporary file per
    process)."""
    tmp = model_file.with_name(f".{model_file.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as writer:
        try:
            _run_trainer(writer, lines, options)
        except RuntimeError as error:  # SentencePiece reports bad settings as INTERNAL errors
            tmp.unlink(missing_ok=True)
            raise ValueError(f"SentencePiece cannot train with {options}: {error}") from None
    tmp.replace(model_file)


def _run_trainer(writer, lines: list[str], options: TokenizerSettings) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=writer,
        vocab_size=options.vocab_size,
        model_type=options.model_type,
        character_coverage=options.character_coverage,
        max_sentence_length=options.max_sentence_length,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        user_defined_symbols=list(SPECIAL_PIECES),
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=True,
        num_threads=2,
        hard_vocab_limit=False,  # a small corpus may not fill the vocabulary: shrink it
        minloglevel=2,
    )
