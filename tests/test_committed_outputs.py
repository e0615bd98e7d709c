"""What a reader sees in the committed notebooks without running them: no path of the machine that
ran them, no warnings or object reprs, and progress bars that show how they ended (also in a static
view without widgets: ``tools/settle_progress_bars.py``)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re

import pytest

from tmtlib.settings import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").rglob("*.ipynb"))
MACHINE_PATH = re.compile(
    r"(?<![\w.])/(?:root|home|tmp|work|Users|var/folders)/|(?<!\w)[A-Z]:\\(?=\w)"
)
OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>|<torch\._C\.\w+")


def _settler():
    spec = importlib.util.spec_from_file_location(
        "settle_progress_bars", REPO_ROOT / "tools" / "settle_progress_bars.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def texts(notebook: dict) -> list[tuple[str, str, str]]:
    """(cell id, kind, text) of every text a cell's outputs show: streams, plain text, markdown,
    HTML, errors (images left out)."""
    found = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                found.append((cell.get("id"), output["name"], "".join(output["text"])))
            elif output["output_type"] == "error":
                found.append((cell.get("id"), "error", output["ename"]))
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/"):
                    found.append((cell.get("id"), kind, "".join(value)))
    return found


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.name)
def committed(request) -> dict:
    return json.loads(request.param.read_text(encoding="utf-8"))


def test_committed_outputs_hold_no_path_of_the_machine_that_ran_them(committed):
    where = [(cell, kind) for cell, kind, text in texts(committed) if MACHINE_PATH.search(text)]
    widgets = json.dumps(committed.get("metadata", {}).get("widgets", {}))
    assert not where and not MACHINE_PATH.search(widgets), f"absolute paths in {where}"
    assert str(REPO_ROOT) not in json.dumps(committed)


def test_committed_outputs_show_no_warning_error_or_object_repr(committed):
    shown = texts(committed)
    assert not [cell for cell, kind, _ in shown if kind == "error"]
    assert not [cell for cell, kind, text in shown if kind == "stderr" and "Warning" in text]
    assert not [cell for cell, _, text in shown if OBJECT_REPR.search(text)]


def test_committed_progress_bars_show_how_they_ended(committed):
    assert _settler().settle(copy.deepcopy(committed)) == 0, (
        "run `python tools/settle_progress_bars.py` on this notebook"
    )


def test_a_bar_is_settled_from_its_saved_widget_state():
    settle = _settler()
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    state = {
        "box": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]},
        "left": {"value": "translation:\u2007100%"},
        "bar": {"value": 250.0, "max": 250.0},
        "right": {"value": "\u2007250/250\u2007[07:49&lt;00:00,\u20071.55s/step]"},
    }
    notebook = {
        "metadata": {
            "widgets": {settle.STATE: {"state": {k: {"state": v} for k, v in state.items()}}}
        },
        "cells": [
            {
                "outputs": [
                    {"data": {settle.VIEW: view, "text/plain": ["translation:   0%|  | 0/250"]}}
                ]
            }
        ],
    }
    assert settle.settle(notebook) == 1 and settle.settle(notebook) == 0
    assert notebook["cells"][0]["outputs"][0]["data"]["text/plain"] == [
        "translation: 100%|██████████| 250/250 [07:49<00:00, 1.55s/step]"
    ]
