"""Shared fixtures: the real corpus (skipped with a printed reason when unavailable)."""

from __future__ import annotations

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
