"""Multi30k (Elliott et al. 2016): download, verify, cache and load.

Task 1 holds 29k English image captions with professional translations into German, French and
Czech: our parallel data. Task 2 holds five independent English and German captions per image:
our monolingual text for pretraining.

Files come from the dataset's public GitHub repository, or from a local mirror with the same
relative layout named by ``TMT_MULTI30K_MIRROR`` (a folder holding ``data/task1/raw/...``).
``TMT_MULTI30K_URL`` replaces the base address (another host, or a test server). Every file is
checked against the SHA-256 manifest ``data/multi30k.sha256`` (files it does not list must at
least decompress completely), written to a temporary file and renamed only when complete, and
cached under ``data/multi30k/``. A corrupted cache file is reported and fetched again.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import random
import shutil
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .subwords import normalize

BASE_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/"
MIRROR_ENV = settings.MULTI30K_MIRROR
URL_ENV = settings.MULTI30K_URL
MANIFEST = settings.REPO_ROOT / "data" / "multi30k.sha256"

TASK1_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("en", "de", "fr", "cs"),
    "val": ("en", "de", "fr", "cs"),
    "test_2016_flickr": ("en", "de", "fr", "cs"),
    "test_2017_flickr": ("en", "de", "fr"),
    "test_2017_mscoco": ("en", "de", "fr"),
    "test_2018_flickr": ("en", "de", "fr", "cs"),
}
TASK2_LANGS = ("en", "de")
TASK2_SPLITS = tuple(f"{split}.{i}" for split in ("train", "val") for i in range(1, 6))
EVALUATION_SPLITS = ("val", "test_2016_flickr")  # the splits the course scores on
OTHER_TEST_SPLITS = ("test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


class DataUnavailable(RuntimeError):
    """A corpus file can be neither found in the cache, copied from a mirror, nor downloaded."""


@dataclass(frozen=True)
class CorpusFile:
    """One gzipped file of the Multi30k repository, e.g. task 1, ``train``, ``en``."""

    task: int
    split: str
    lang: str

    @property
    def relpath(self) -> str:
        return f"data/task{self.task}/raw/{self.split}.{self.lang}.gz"


def registry() -> list[CorpusFile]:
    """Every file of the registry: task-1 splits for en/de/fr/cs where they exist, task-2 en/de."""
    task1 = [CorpusFile(1, split, lang) for split, langs in TASK1_SPLITS.items() for lang in langs]
    task2 = [CorpusFile(2, split, lang) for split in TASK2_SPLITS for lang in TASK2_LANGS]
    return task1 + task2


def corpus_file(task: int, split: str, lang: str) -> CorpusFile:
    """Look up a registry entry, with a clear error for a split or language that does not exist."""
    entry = CorpusFile(task, split, lang)
    if entry not in registry():
        splits = TASK1_SPLITS if task == 1 else {s: TASK2_LANGS for s in TASK2_SPLITS}
        known = ", ".join(f"{s} ({'/'.join(langs)})" for s, langs in splits.items())
        raise ValueError(f"Multi30k task {task} has no {split}.{lang}; it has: {known}")
    return entry


@functools.cache
def manifest() -> dict[str, str]:
    """Relative path -> expected SHA-256, from ``data/multi30k.sha256`` (``sha256sum`` format)."""
    if not MANIFEST.exists():
        return {}
    pairs = (line.split(maxsplit=1) for line in MANIFEST.read_text().splitlines() if line.strip())
    return {path.strip().lstrip("*"): digest for digest, path in pairs}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, relpath: str) -> str | None:
    """None when ``path`` is a good copy of ``relpath``, else the reason it is not."""
    expected = manifest().get(relpath)
    if expected is not None:
        actual = sha256(path)
        return (
            None
            if actual == expected
            else f"SHA-256 {actual[:12]}… does not match {expected[:12]}…"
        )
    try:  # no known checksum: at least the gzip stream must be complete
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as error:
        return f"not a complete gzip file ({error})"
    return None


def cache_root() -> Path:
    return settings.home() / "multi30k"


def fetch(
    entry: CorpusFile, mirror: str | os.PathLike | None = None, base_url: str | None = None
) -> Path:
    """Return the verified cached copy of ``entry``, copying or downloading it first if needed.

    Sources: the cache; else the mirror (argument or ``TMT_MULTI30K_MIRROR``) when one is set;
    else the base URL (argument, ``TMT_MULTI30K_URL`` or GitHub). A bad cached file is reported
    and replaced.
    """
    target = cache_root() / entry.relpath
    if target.exists():
        problem = verify(target, entry.relpath)
        if problem is None:
            return target
        warnings.warn(
            f"cached {entry.relpath} is damaged ({problem}); fetching it again", stacklevel=2
        )
        target.unlink()
    mirror = mirror or settings.multi30k_mirror()
    layout = "a copy of the multi30k/dataset repository (with data/task1/raw and data/task2/raw)"
    if mirror:  # a mirror, when set, is the only source: no surprise network traffic
        source = Path(mirror).expanduser() / entry.relpath
        problem = _install(
            target, entry.relpath, lambda tmp: shutil.copyfile(source, tmp), f"mirror {mirror}"
        )
        remedy = f"check that the mirror {mirror} ({MIRROR_ENV}) holds {layout}"
    else:
        url = (base_url or settings.multi30k_url() or BASE_URL).rstrip("/") + "/" + entry.relpath
        problem = _install(target, entry.relpath, lambda tmp: _download(url, tmp), url)
        remedy = f"connect to the internet, or set {MIRROR_ENV} to a folder holding {layout}"
    if problem is None:
        return target
    raise DataUnavailable(
        f"Multi30k file {entry.relpath} could not be obtained ({problem}): {remedy}."
    )


def _install(target: Path, relpath: str, write, origin: str) -> str | None:
    """Write a file via ``write(tmp)``, verify it, then rename it into place; None on success.

    A source that fails is the reason returned; a cache that cannot be written (a read-only
    folder) is the ``OSError`` itself, naming the cache path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        write(tmp)
        problem = verify(tmp, relpath)
    except (OSError, urllib.error.URLError) as error:
        if getattr(error, "filename", None) == str(tmp):
            raise
        problem = f"{type(error).__name__}: {error}"
    if problem is None:
        tmp.replace(target)
        return None
    tmp.unlink(missing_ok=True)
    return f"{origin}: {problem}"


def _download(url: str, destination: Path, timeout: float = 30.0) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        expected = response.headers.get("Content-Length")
        copied = 0
        for block in iter(lambda: response.read(1 << 16), b""):
            out.write(block)
            copied += len(block)
    if expected is not None and copied != int(expected):
        raise OSError(f"transfer cut short: {copied} of {expected} bytes")


@functools.lru_cache(maxsize=None)
def _read(task: int, split: str, lang: str) -> tuple[str, ...]:
    with gzip.open(fetch(corpus_file(task, split, lang)), "rt", encoding="utf-8") as handle:
        return tuple(line.rstrip("\n") for line in handle)


def read_lines(task: int, split: str, lang: str) -> list[str]:
    """The sentences of one file, one per line, in corpus order."""
    return list(_read(task, split, lang))


def load_parallel(src: str, tgt: str, split: str = "train") -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs of task 1, e.g. ``load_parallel("en", "de",
    "val")``."""
    if src == tgt:
        raise ValueError(f"a parallel corpus needs two different languages, got {src!r} twice")
    sources, targets = read_lines(1, split, src), read_lines(1, split, tgt)
    if len(sources) != len(targets):
        raise DataUnavailable(
            f"{split}.{src} has {len(sources)} lines but {split}.{tgt} has {len(targets)}"
        )
    return list(zip(sources, targets))


def load_monolingual(lang: str, split: str = "train") -> list[str]:
    """Task-2 captions of ``lang`` (en or de): the five caption files of a split, concatenated."""
    if lang not in TASK2_LANGS:
        raise ValueError(f"task 2 has captions in {' and '.join(TASK2_LANGS)} only, not {lang!r}")
    return [line for i in range(1, 6) for line in read_lines(2, f"{split}.{i}", lang)]


def caption_sets(lang: str, split: str = "train") -> list[tuple[str, ...]]:
    """Task-2 captions grouped by image: one tuple of five independent captions per image.

    The five caption files of a split are aligned by line (line i describes image i in each), so
    two captions of one image are a natural paraphrase pair."""
    if lang not in TASK2_LANGS:
        raise ValueError(f"task 2 has captions in {' and '.join(TASK2_LANGS)} only, not {lang!r}")
    return list(zip(*(read_lines(2, f"{split}.{i}", lang) for i in range(1, 6))))


@functools.cache
def evaluation_sentences(lang: str) -> frozenset[str]:
    """Normalised sentences of ``lang`` in every validation and test set that can be obtained.

    ``val`` and ``test_2016_flickr`` (task 1) and the task-2 validation captions are required; the
    other test sets are added when they can be fetched (a mirror may hold only some of them).
    """
    sentences = {normalize(s) for split in EVALUATION_SPLITS for s in read_lines(1, split, lang)}
    if lang in TASK2_LANGS:
        sentences |= {normalize(s) for s in load_monolingual(lang, "val")}
    for split in OTHER_TEST_SPLITS:
        if f"{split}.{lang}" not in unavailable_test_sets(lang):
            sentences |= {normalize(s) for s in read_lines(1, split, lang)}
    return frozenset(sentences)


@functools.cache
def unavailable_test_sets(lang: str) -> tuple[str, ...]:
    """The optional test sets of ``lang`` (``OTHER_TEST_SPLITS``) that cannot be fetched here, as
    'split.lang': they cannot be kept out of pretraining text. Empty with the full Multi30k
    download; a partial mirror lacks some, which notebook 00 reports beside the held-out counts."""
    missing = []
    for split in OTHER_TEST_SPLITS:
        if lang in TASK1_SPLITS[split]:
            try:
                read_lines(1, split, lang)
            except DataUnavailable:
                missing.append(f"{split}.{lang}")
    return tuple(missing)


def low_resource_subset(
    pairs: Sequence[tuple[str, str]], n: int, seed: int = 0
) -> list[tuple[str, str]]:
    """A deterministic random subset of ``n`` pairs (kept in corpus order): a simulated small
    corpus."""
    if not 0 < n <= len(pairs):
        raise ValueError(f"cannot draw {n} pairs from a corpus of {len(pairs)}")
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in chosen]


def pretraining_corpus(
    lang: str,
    exclude: Iterable[str] = (),
    include_task1_train: bool = False,
) -> list[str]:
    """Monolingual text of ``lang`` for pretraining, disjoint from every evaluation sentence.

    Task-2 training captions (en, de), plus, when ``include_task1_train``, the task-1 training
    sentences of ``lang``; minus every validation/test sentence and every sentence in ``exclude``
    (pass one side of the chosen parallel subset to keep it out as well). Duplicates are removed;
    first occurrences keep their order.
    """
    sources = list(load_monolingual(lang)) if lang in TASK2_LANGS else []
    if include_task1_train:
        sources += read_lines(1, "train", lang)
    if not sources:
        raise ValueError(
            f"no monolingual text for {lang!r}: task 2 has en and de; set include_task1_train"
        )
    banned = evaluation_sentences(lang) | {normalize(s) for s in exclude}
    kept: dict[str, None] = {}
    for sentence in sources:
        key = normalize(sentence)
        if key and key not in banned:
            kept.setdefault(key, None)
    return list(kept)
