"""What a learner sees before running anything: metadata JupyterLab keeps, and a static fallback per
widget.

No browser needed. Readers on a code host or with an untrusted notebook cannot see widgets; the
markdown cell after each widget cell shows the widget's committed full-mode state instead, and must
stay equal to it (regenerate with ``python3 tests/browser/notebook_widgets.py notebooks/*.ipynb``).
"""

from __future__ import annotations

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from notebook_widgets import fallback_cell, is_fallback, read, widget_cells

from conftest import NOTEBOOKS

ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda path: path.name)
def test_kernelspec_is_what_jupyterlab_writes(path):
    """JupyterLab rewrites the kernelspec from the kernel's own spec on opening, marking the
    notebook modified."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    expected = {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
    assert read(path)["metadata"]["kernelspec"] == expected


@pytest.mark.parametrize(
    "path", [p for p in ALL_NOTEBOOKS if widget_cells(read(p))], ids=lambda path: path.name
)
def test_every_widget_has_its_committed_result_as_a_static_fallback(path):
    notebook = read(path)
    for cell in widget_cells(notebook):
        assert cell.model_id, (
            f"{path.name}: cell {cell.index} ({cell.builder}) has no committed widget output"
        )
        following = (
            notebook["cells"][cell.index + 1] if cell.index + 1 < len(notebook["cells"]) else {}
        )
        assert is_fallback(following), (
            f"{path.name}: no fallback cell after cell {cell.index} ({cell.builder})"
        )
        expected = fallback_cell(notebook, cell)
        assert following["source"] == expected["source"], (
            f"{path.name}: the fallback after cell {cell.index} ({cell.builder}) differs from the "
            "committed widget state; regenerate it: python3 tests/browser/notebook_widgets.py "
            + f"notebooks/{path.name}"
        )
