"""Shared fixtures: the real corpus (skipped with a printed reason when unavailable; tests that
use it are ``slow``, see the root ``conftest.py``) and the toy corpus of ``tests/data/toy`` that
stands in for it in the fast tier."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tmtlib import data


@pytest.fixture(scope="session")
def corpus() -> None:
    """Make the real Multi30k available (cache, mirror or network), or skip with the reason."""
    try:
        data.fetch(data.corpus_file(1, "test_2016_flickr", "en"))
    except data.DataUnavailable as error:
        pytest.skip(f"Multi30k unavailable (no mirror, no network): {error}")


@pytest.fixture(scope="session")
def tokenizer(corpus):
    """The course's joint en/de/fr/cs SentencePiece model (trained once, then cached)."""
    from tmtlib.pipeline import course_tokenizer

    return course_tokenizer()


TOY = Path(__file__).resolve().parent / "data" / "toy"


def _forget_loaded_files() -> None:
    """Empty ``tmtlib.data``'s caches of what it read: the next read goes to the current source."""
    caches = (data.manifest, data._read, data.evaluation_sentences, data.unavailable_test_sets)
    for cached in caches:
        cached.cache_clear()


def _write_toy_corpus(root: Path) -> Path:
    """The toy corpus written under ``root`` by ``tests/data/toy/generate.py``."""
    spec = importlib.util.spec_from_file_location("toy_corpus_generator", TOY / "generate.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.write(root)
    return root


@contextlib.contextmanager
def _toy_multi30k(mirror: Path, home: Path) -> Iterator[None]:
    """Within the block, ``tmtlib.data`` reads the toy corpus: its mirror, its checksums and a home
    of its own (so no real file, tokenizer or run is mixed up with a toy one); afterwards, the
    real corpus again."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(data.MIRROR_ENV, str(mirror))
        patch.setenv("TMT_HOME", str(home))
        patch.setattr(data, "MANIFEST", TOY / "multi30k.sha256")
        _forget_loaded_files()
        try:
            yield
        finally:
            _forget_loaded_files()


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """``with toy(): ...`` reads the toy corpus (``tests/data/toy/generate.py``) in place of
    Multi30k, for fixtures of any scope; the home is one for the whole session."""
    mirror = _write_toy_corpus(tmp_path_factory.mktemp("toy-corpus"))
    home = tmp_path_factory.mktemp("toy-home")
    return lambda: _toy_multi30k(mirror, home)


@pytest.fixture
def toy_corpus(toy) -> Iterator[None]:
    """The toy corpus in place of Multi30k for one test."""
    with toy():
        yield


@pytest.fixture(scope="session")
def toy_tokenizer(toy):
    """The course's tokenizer (``course_tokenizer``, default settings) trained on the toy corpus:
    about 470 pieces (SentencePiece stops where the text runs out), in half a second."""
    from tmtlib.pipeline import course_tokenizer

    with toy():
        return course_tokenizer()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors gain nothing from intra-op threads and lose much when other jobs share the
    CPUs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The timings the browser tests wrote (``timings.json`` in their artefacts folder, also a
    worker's under pytest-xdist) and where the screenshots are. Here, not in tests/browser: the
    process that reports under xdist loads only the conftest files of the test paths."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    named = os.environ.get("TMT_BROWSER_ARTEFACTS")
    base = config._tmp_path_factory.getbasetemp()  # what the tmp_path_factory fixture returns
    found = (
        [Path(named) / "timings.json"] if named else base.rglob("browser-artefacts/timings.json")
    )
    for timings in (path for path in found if path.exists()):
        terminalreporter.section("browser test: seconds per notebook and per interaction")
        for row in json.loads(timings.read_text()):
            terminalreporter.write_line(
                f"{row['notebook']:40} {row['what']:55} {row['seconds']:6.1f} s"
                f"  (limit {row['limit_s']:.0f} s)"
            )
        terminalreporter.write_line(f"screenshots and timings.json in {timings.parent}")
