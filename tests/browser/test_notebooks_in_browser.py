"""The widget notebooks in JupyterLab in headless Chromium, run and driven as a learner does.

nbval proves that the kernels run; this proves what a learner sees: each notebook opens unmodified,
Run All finishes without an error output or a browser console error, every widget is drawn by the
frontend (not its text fallback), and every control of every widget changes the visible output as
it should within a stated time. Screenshots of each widget after the interaction are saved.
"""

from __future__ import annotations

import re
import time

import pytest
from lab_driver import NotebookTab
from notebook_widgets import is_widget_notebook, read, widget_cells
from widget_drivers import DRIVERS, LIMIT_S, Driver, WidgetFailure

from conftest import NOTEBOOKS, TIMINGS

pytestmark = pytest.mark.browser

OPEN_LIMIT_S = 120
RUN_ALL_LIMIT_S = (
    300  # quick mode, models already cached by nbval; includes training them where they are not
)
# a widget the frontend drew (without the widget extension, the output is the widget's text/plain
# repr instead)
WIDGET_DRAWN = (
    ".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output > .jupyter-widgets"
)
IMAGES_DECODED = (
    "node => Promise.all([...node.querySelectorAll('img')].map(img => img.decode().catch(() => 0)))"
)
ALL_NOTEBOOKS = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
WIDGET_NOTEBOOKS = [name for name in ALL_NOTEBOOKS if is_widget_notebook(read(NOTEBOOKS / name))]


def timed(notebook: str, what: str, limit_s: float, step, artefacts) -> None:
    start = time.monotonic()
    step()
    TIMINGS.append(
        {
            "notebook": notebook,
            "what": what,
            "seconds": time.monotonic() - start,
            "limit_s": limit_s,
            "artefacts": str(artefacts),
        }
    )


def test_notebooks_open_unmodified(lab_page):
    """A notebook opened fresh is not marked modified: its metadata is what JupyterLab itself
    writes."""
    page, log = lab_page
    tabs = [NotebookTab(page, name) for name in ALL_NOTEBOOKS]
    try:
        for tab in tabs:
            tab.open(OPEN_LIMIT_S)
        modified = [tab.path for tab in tabs if tab.dirty()]
    finally:
        for tab in tabs:
            tab.close()
    assert not modified, (
        f"marked modified as soon as opened in JupyterLab: {modified} (compare the kernelspec "
        "and language_info metadata with a copy saved from JupyterLab)"
    )
    assert not log.take(), "browser console errors while opening the notebooks"


@pytest.mark.parametrize("name", WIDGET_NOTEBOOKS)
def test_widgets_respond_in_jupyterlab(name, lab_page, artefacts):
    page, log = lab_page
    tab = NotebookTab(page, name)
    timed(name, "open, kernel ready", OPEN_LIMIT_S, lambda: tab.open(OPEN_LIMIT_S), artefacts)
    try:
        timed(
            name,
            "Run All Cells until the kernel is idle",
            RUN_ALL_LIMIT_S,
            lambda: tab.run_all(RUN_ALL_LIMIT_S),
            artefacts,
        )
        errors = tab.error_outputs()
        assert not errors, f"{name}: error output after Run All Cells:\n" + "\n---\n".join(errors)
        not_run = [prompt for prompt in tab.prompts() if not re.fullmatch(r"\[\d+\]:", prompt)]
        assert not not_run, f"{name}: cells not run after Run All Cells: {not_run}"
        broken = tab.node.get_by_text("Error displaying widget")
        assert broken.count() == 0, f"{name}: {broken.first.inner_text()}"
        for cell in widget_cells(read(NOTEBOOKS / name)):
            drive(name, tab, cell, page, artefacts)
        console = log.take()
        assert not console, f"{name}: browser console errors:\n" + "\n".join(console)
    finally:
        tab.close()


def drive(name: str, tab: NotebookTab, cell, page, artefacts) -> None:
    """Check that the widget of ``cell`` is drawn, drive all its controls, and save its
    screenshot."""
    views = tab.cell(cell.index).locator(WIDGET_DRAWN)
    if views.count() == 0:
        shown = tab.cell(cell.index).locator(".jp-Cell-outputArea").inner_text()
        raise WidgetFailure(
            f"{name} · {cell.builder}: cell {cell.index} shows no widget, only {shown[:200]!r} "
            "(is the ipywidgets frontend extension installed and in step with ipywidgets?)"
        )
    if cell.builder not in DRIVERS:
        raise WidgetFailure(
            f"{name} · {cell.builder}: no driver in tests/browser/widget_drivers.py for this widget"
        )
    driver = Driver(page, name, cell.builder, views.last, lambda: tab.wait_idle(LIMIT_S))
    try:
        DRIVERS[cell.builder](driver)
    finally:
        views.last.evaluate(IMAGES_DECODED)  # a heatmap below the fold is decoded only when shown
        views.last.screenshot(path=artefacts / f"{name.removesuffix('.ipynb')}-{cell.builder}.png")
        TIMINGS.extend(
            {
                "notebook": name,
                "what": f"{i.widget} · {i.control}: {i.action}"[:55],
                "seconds": i.seconds,
                "limit_s": i.limit_s,
                "artefacts": str(artefacts),
            }
            for i in driver.log
        )
