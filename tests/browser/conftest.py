"""Fixtures of the browser test: Chromium from the system, a JupyterLab server on a copy of the
notebooks.

Skipped, with the reason printed, where Playwright or a Chromium cannot be found. Chromium is the
operating system's (``apt-get install chromium``), not Playwright's own download: ``TMT_CHROMIUM``
names another executable. Screenshots and timings go to ``TMT_BROWSER_ARTEFACTS`` (default: a
folder under pytest's temporary directory, printed at the end of the run).

The notebooks are copied to a temporary folder, so neither the test nor JupyterLab's autosave ever
writes into them. The kernels share the test session's run cache (``cache/runs`` under ``TMT_HOME``,
a temporary home unless set; see the root ``conftest.py``) with nbval. Before the lab starts,
``trained_models`` trains the models the widget notebooks load (or, when another test worker is
training one, waits for it), so Run All meets a warm cache in any test order, with or without
parallel workers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
HERE = Path(__file__).resolve().parent
# filled by the tests, written to timings.json at the end (tests/conftest.py prints it)
TIMINGS: list[dict] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last: after nbval has trained (and cached) the quick-mode models."""
    items.sort(key=lambda item: Path(str(item.path)).is_relative_to(HERE))


def chromium_executable() -> str | None:
    """``TMT_CHROMIUM``, else the first Chromium on the PATH."""
    names = [os.environ.get("TMT_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(name) for name in names if name and shutil.which(name)), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_executable()
    if path is None:
        pytest.skip(
            "no Chromium found (apt-get install chromium, or set TMT_CHROMIUM): browser "
            "test skipped"
        )
    return path


@pytest.fixture(scope="session")
def playwright_api(chromium):
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright not installed (pip install -r requirements.txt installs it, with the "
        "test extra)",
    )
    with sync_api.sync_playwright() as api:
        yield api


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory) -> Iterator[Path]:
    folder = Path(
        os.environ.get("TMT_BROWSER_ARTEFACTS")
        or tmp_path_factory.getbasetemp() / "browser-artefacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    # written by the process that ran the tests: under xdist, a worker, not the one that reports
    if TIMINGS:
        (folder / "timings.json").write_text(json.dumps(TIMINGS, indent=1))


@pytest.fixture(scope="session")
def trained_models(corpus) -> None:
    """The quick models of notebooks 1, 2, 3, 5 and 9, cached before any notebook runs."""
    from tmtlib import course, pipeline

    tokenizer = pipeline.course_tokenizer()
    for spec in (*course.autoencoder_specs().values(), *course.vae_collapse_specs().values()):
        pipeline.cached_run(spec, tokenizer)
    for init in (None, *course.PRETRAIN_OBJECTIVES):
        course.translator(init, pairs=2000)
    for init, pairs in course.SHOWCASE_RUNS:
        course.translator(init, pairs=pairs)


def as_a_learner_has_it() -> dict[str, str]:
    """This environment without the test command's allocator settings (the root conftest.py): the
    lab, its kernels and the browser run as on a learner's machine."""
    return {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}


@pytest.fixture(scope="session")
def lab_server(playwright_api, trained_models, tmp_path_factory):
    """JupyterLab on a temporary copy of the notebooks, kernels in quick mode importing this
    checkout."""
    from lab_driver import start_lab

    root, state = tmp_path_factory.mktemp("lab-notebooks"), tmp_path_factory.mktemp("lab-state")
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
    env = dict(
        as_a_learner_has_it(),
        TMT_QUICK="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    server = start_lab(root, state, env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(playwright_api, chromium):
    browser = playwright_api.chromium.launch(
        executable_path=chromium, headless=True, env=as_a_learner_has_it()
    )
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def lab_page(browser, lab_server):
    """One JupyterLab page for the whole session, with its console errors collected."""
    from lab_driver import BrowserLog, open_lab

    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    log = BrowserLog()
    log.watch(page)
    open_lab(page, lab_server)
    startup_errors = log.take()
    assert not startup_errors, f"JupyterLab logged errors while starting: {startup_errors}"
    yield page, log
    page.close()
