"""Which notebooks and cells show widgets, found from the notebooks' content, and their static
fallbacks.

A *widget cell* calls one of the widget builders of ``tmtlib.widgets`` (the functions that return a
``Widget``); a *widget notebook* has a widget cell or any committed widget output (tqdm's progress
bars in the training notebooks are widgets too). Right after each widget cell comes a markdown
*fallback* cell (tagged ``widget-fallback``): the widget's committed full-mode state written out as
plain text, for readers on a code host or with an untrusted notebook, where the widget itself cannot
draw.

Regenerate the fallbacks after re-running a notebook in full mode:
``python3 tests/browser/notebook_widgets.py notebooks/*.ipynb``
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tmtlib import widgets

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
FALLBACK_TAG = "widget-fallback"
FALLBACK_INTRO = (
    "*Without a running kernel (on a code host, or in an untrusted notebook) the widget above "
    "cannot draw; this is what it showed when the notebook was run in full:*"
)


def widget_builders() -> set[str]:
    """Names of the functions in ``tmtlib.widgets`` that build a widget (annotated ``->
    w.Widget``)."""
    return {
        name
        for name, function in inspect.getmembers(widgets, inspect.isfunction)
        if function.__module__ == widgets.__name__
        and str(inspect.signature(function).return_annotation).endswith("Widget")
    }


def widget_names(notebook: dict) -> tuple[dict[str, str], set[str]]:
    """How the notebook refers to the builders: ({local name: builder} from ``from tmtlib.widgets
    import``, {names bound to the module} from ``from tmtlib import widgets`` or ``import
    tmtlib.widgets as w``)."""
    builders, functions, modules = widget_builders(), {}, set()
    for tree in _trees(notebook):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == widgets.__name__:
                functions |= {a.asname or a.name: a.name for a in node.names if a.name in builders}
            elif isinstance(node, ast.ImportFrom) and node.module == "tmtlib":
                modules |= {a.asname or a.name for a in node.names if a.name == "widgets"}
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names if a.name == widgets.__name__ and a.asname}
    return functions, modules


def _trees(notebook: dict) -> list[ast.AST]:
    """The parsed code cells (cells that do not parse, e.g. IPython magics, count as empty)."""
    trees = []
    for cell in notebook["cells"]:
        try:
            trees.append(
                ast.parse("".join(cell["source"]))
                if cell["cell_type"] == "code"
                else ast.Module([], [])
            )
        except SyntaxError:
            trees.append(ast.Module([], []))
    return trees


def built_widgets(tree: ast.AST, functions: dict[str, str], modules: set[str]) -> list[str]:
    """The builders a cell calls, resolved through the notebook's imports."""
    found = []
    for node in ast.walk(tree):
        call = node.func if isinstance(node, ast.Call) else None
        if isinstance(call, ast.Name) and call.id in functions:
            found.append(functions[call.id])
        elif (
            isinstance(call, ast.Attribute)
            and isinstance(call.value, ast.Name)
            and call.value.id in modules
            and call.attr in widget_builders()
        ):
            found.append(call.attr)
    return found


@dataclass(frozen=True)
class WidgetCell:
    index: int  # position among all cells of the notebook
    builder: str  # the tmtlib.widgets function it calls
    # the committed widget's model id, None when the cell has no committed widget output
    model_id: str | None


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def widget_cells(notebook: dict) -> list[WidgetCell]:
    """The cells that build a widget, in order."""
    functions, modules = widget_names(notebook)
    found = []
    for index, (cell, tree) in enumerate(zip(notebook["cells"], _trees(notebook))):
        built = built_widgets(tree, functions, modules)
        if built:
            views = [
                o["data"][WIDGET_VIEW]["model_id"]
                for o in cell.get("outputs", [])
                if WIDGET_VIEW in o.get("data", {})
            ]
            found.append(WidgetCell(index, built[-1], views[-1] if views else None))
    return found


def has_widget_output(notebook: dict) -> bool:
    return any(
        WIDGET_VIEW in output.get("data", {})
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
    )


def is_widget_notebook(notebook: dict) -> bool:
    return bool(widget_cells(notebook)) or has_widget_output(notebook)


# --- static fallbacks -------------------------------------------------------------------------


def _lines(state: dict, model_id: str) -> list[str]:
    """What the widget ``model_id`` shows, as lines of text (controls as 'description: value')."""
    model = state[model_id]
    name, values = model["model_name"], model["state"]
    if name in {"VBoxModel", "HBoxModel", "BoxModel"}:
        parts = [_lines(state, child.removeprefix("IPY_MODEL_")) for child in values["children"]]
        if name == "HBoxModel":
            return ["   ".join(line for part in parts for line in part)]
        return [line for part in parts for line in part]
    if name == "OutputModel":
        return [line for output in values["outputs"] for line in _output_lines(output)]
    if name == "LabelModel":
        return [values["value"]]
    if name == "DropdownModel":
        value = values["_options_labels"][values["index"]] if values["index"] is not None else ""
        return [f"{values['description']}: {value}"]
    if "value" in values:
        description = values.get("description", "")
        return [
            f"{description}: {values['value']}".rstrip() if description else str(values["value"])
        ]
    return []


def _output_lines(output: dict) -> list[str]:
    if output["output_type"] == "stream":
        return "".join(output["text"]).splitlines()
    data = output.get("data", {})
    if "image/png" in data:
        return ["(a figure: drawn by the live widget only)"]
    return "".join(data.get("text/plain", "")).splitlines()


def fallback_cell(notebook: dict, cell: WidgetCell) -> dict:
    """The markdown fallback for ``cell``, rendered from the notebook's committed widget state."""
    state = notebook["metadata"]["widgets"][WIDGET_STATE]["state"]
    text = "\n".join(_lines(state, cell.model_id))
    source = f"{FALLBACK_INTRO}\n\n```text\n{text}\n```"
    return {
        "cell_type": "markdown",
        "id": f"{notebook['cells'][cell.index].get('id', 'cell')[:8]}-fallback",
        "metadata": {"tags": [FALLBACK_TAG]},
        "source": source.splitlines(keepends=True),
    }


def is_fallback(cell: dict) -> bool:
    return FALLBACK_TAG in cell.get("metadata", {}).get("tags", [])


def with_fallbacks(notebook: dict) -> dict:
    """The notebook with each widget cell followed by its (re)generated fallback, old fallbacks
    replaced."""
    cells = [cell for cell in notebook["cells"] if not is_fallback(cell)]
    rebuilt = dict(notebook, cells=cells)
    for cell in reversed(widget_cells(rebuilt)):
        if cell.model_id is None:
            raise ValueError(
                f"cell {cell.index} ({cell.builder}) has no committed widget output to fall back on"
            )
        cells.insert(cell.index + 1, fallback_cell(rebuilt, cell))
    return rebuilt


def main(paths: list[str]) -> int:
    """Rewrite the fallbacks of the given notebooks in place (notebooks without widget cells are
    left alone)."""
    for name in paths:
        path = Path(name)
        notebook = read(path)
        if not widget_cells(notebook):
            continue
        updated = with_fallbacks(notebook)
        if updated != notebook:
            path.write_text(
                json.dumps(updated, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                encoding="utf-8",
            )
            print(f"{path}: fallbacks written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
