"""Test-session setup shared by pytest (tests/) and nbval (notebooks/).

Notebooks always run in quick mode under the test command, and the Multi30k mirror beside the
checkout (``../shared/data/multi30k``, as on CI) is used when no other source is configured.
Unless ``TMT_HOME`` is set, the whole session shares one temporary home for downloads, the
tokenizer and trained runs, so no test writes into the checkout and the tokenizer is trained once.
The kernels nbval starts inherit this environment.

Two tiers: ``python3 -m pytest -m "not slow"`` is the edit-test loop (minutes, on the toy corpus in
``tests/data/toy``); the full command, which CI runs, adds the ``slow`` tests. Every notebook under
nbval, the browser test and every test that needs the real corpus (the ``corpus`` fixture of
``tests/conftest.py``, also through ``tokenizer``) is marked ``slow`` here, at collection.

The test command runs on every core (pytest-xdist, ``-n auto --dist loadfile``: a notebook's cells
stay together in one worker); each worker, and each kernel it starts, then computes on one thread,
so workers do not compete for cores. A run two workers need at once is trained once (the run cache
makes the second wait, ``tmtlib.pipeline.cached_run``); so that they rarely wait, each worker first
trains its share of the runs most tests and notebooks load (``tmtlib.course.prepare``).

Workers and kernels also keep freed memory for reuse (glibc: no ``mmap`` for large blocks, no
trimming): a step allocates and frees tensors of tens of MB (the logits over the vocabulary), and
fetching them fresh from the kernel each time cost a third of a tiny model's step (0.144 s against
0.094 s a step, one thread).
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TMT_QUICK", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MALLOC_MMAP_MAX_", "0")  # read by the processes started from here on
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(2**40))
_mirror = Path(__file__).resolve().parent.parent / "shared" / "data" / "multi30k"
if "TMT_MULTI30K_MIRROR" not in os.environ and _mirror.is_dir():
    os.environ["TMT_MULTI30K_MIRROR"] = str(_mirror)
if "TMT_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="tmt-test-home-")
    os.environ["TMT_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def worker_share_of_the_shared_runs(request: pytest.FixtureRequest) -> None:
    """A parallel worker of a session that runs notebooks first trains its share of
    ``tmtlib.course.shared_runs`` (nothing in one process, for a run of library tests alone, or
    without the corpus: those train what they need when they need it)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    notebooks = any(item.path.suffix == ".ipynb" for item in request.session.items)
    if not worker or not workers or not notebooks:
        return
    from tmtlib import course, data

    try:
        data.fetch(data.corpus_file(1, "test_2016_flickr", "en"))
    except data.DataUnavailable:
        return
    course.prepare(share=int(worker.removeprefix("gw")), of=int(workers))


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what needs the real corpus, a kernel or a browser: notebooks under nbval,
    browser tests, and tests that use the ``corpus`` fixture (directly or through another)."""
    for item in items:
        if (
            item.path.suffix == ".ipynb"
            or item.get_closest_marker("browser")
            or "corpus" in getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.slow)
