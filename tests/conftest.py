"""Shared fixtures: the real corpus (skipped with a printed reason when unavailable)."""

from __future__ import annotations

import json
import os
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
