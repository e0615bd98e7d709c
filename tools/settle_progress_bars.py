"""Give each progress bar in a notebook's committed outputs the text it ended with.

A tqdm bar in JupyterLab is a widget: the notebook saves its final state (``100%``, ``250/250
[06:59<00:00, ...]``) in the notebook's widget metadata, but the plain-text fallback that a static
view shows (GitHub, nbviewer without widgets, ``jupyter nbconvert --to markdown``) is the text of
the bar when it was first displayed: ``0%| | 0/250``. This script rewrites that fallback from the
saved widget state, so a reader without the widget sees what the run printed at its end.

    python tools/settle_progress_bars.py notebooks/*.ipynb
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
BAR_WIDTH = 10  # tqdm's bar in a fixed-width fallback


def widget_states(notebook: dict) -> dict[str, dict]:
    """The saved state of every widget model, by model id."""
    saved = notebook.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})
    return {model_id: model["state"] for model_id, model in saved.items()}


def final_text(box: dict, states: dict[str, dict]) -> str | None:
    """A tqdm widget's final line as tqdm writes it to a terminal, from its HBox of (HTML label,
    FloatProgress, HTML counts); None for any other widget."""
    children = [states.get(child.removeprefix("IPY_MODEL_")) for child in box.get("children", [])]
    if len(children) != 3 or None in children or "max" not in children[1]:
        return None
    left, bar, right = children
    filled = round(BAR_WIDTH * bar["value"] / bar["max"]) if bar["max"] else 0

    def plain(value: str) -> str:
        return html.unescape(value).replace("\u2007", " ")

    return (
        f"{plain(left['value'])}|{'█' * filled}{' ' * (BAR_WIDTH - filled)}|{plain(right['value'])}"
    )


def settle(notebook: dict) -> int:
    """Rewrite every progress-bar output's text/plain fallback; returns how many changed."""
    states, changed = widget_states(notebook), 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(VIEW)
            box = states.get(view["model_id"]) if view else None
            text = final_text(box, states) if box else None
            if text is not None and "".join(output["data"].get("text/plain", "")) != text:
                output["data"]["text/plain"] = [text]  # nbformat's list of lines
                changed += 1
    return changed


def main(paths: list[str]) -> None:
    for name in paths:
        path = Path(name)
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if changed := settle(notebook):
            text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            print(f"{path}: {changed} progress bars settled")


if __name__ == "__main__":
    main(sys.argv[1:])
