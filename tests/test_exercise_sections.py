"""The course structure around the exercises: every notebook listed here opens with learning goals,
prerequisites and the expected time, and ends with a recap, 3-5 graded exercises and references; every
code exercise calls a check that exists, and its solutions notebook asserts that same check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WITH_EXERCISES = ["00_overview_and_data", "01_autoencoders", "02_variational_autoencoders", "03_pretraining",
                  "05_transfer_and_finetuning"]
GRADES = ("reproduce", "modify", "extend", "open question")
CHECK_CALL = re.compile(r"^(check_\w+)\(", re.MULTILINE)
CHECK_IMPORT = re.compile(r"^from tmtlib\.exercises\.(\w+) import (check_\w+)", re.MULTILINE)


def cells(name: str, folder: Path = NOTEBOOKS) -> list[tuple[str, str]]:
    notebook = json.loads((folder / f"{name}.ipynb").read_text(encoding="utf-8"))
    return [(cell["cell_type"], "".join(cell["source"])) for cell in notebook["cells"]]


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_opening_and_closing_sections(name):
    sources = [source for _, source in cells(name)]
    opening = sources[1]
    for part in ("**Learning goals.**", "**Prerequisites.**", "**Expected time.**"):
        assert part in opening, f"{name}: the cell after the title lacks {part}"
    goals = re.findall(r"^\d+\. ", opening.split("**Prerequisites.**")[0], re.MULTILINE)
    assert 3 <= len(goals) <= 5, f"{name}: {len(goals)} learning goals"
    headings = [s.splitlines()[0] for s in sources if s.startswith("## ")]
    assert headings[-3:] == ["## Recap", "## Exercises", "## References"], headings[-3:]
    references = sources[-1]
    assert len(re.findall(r"^\* .*\]\(https://", references, re.MULTILINE)) >= 5, "references with links"


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_exercises_are_graded_checked_and_solved(name):
    notebook = cells(name)
    exercises = [source for kind, source in notebook if kind == "markdown" and source.startswith("### Exercise")]
    assert 3 <= len(exercises) <= 5, f"{name}: {len(exercises)} exercises"
    grades = [re.search(r"\*\((.+?)\)\*", text.splitlines()[0]).group(1) for text in exercises]
    assert set(grades) <= set(GRADES) and grades[0] == "reproduce" and grades[-1] == "open question", grades
    for text, grade in zip(exercises, grades):
        if grade == "open question":
            assert "<details><summary>Model answer</summary>" in text, f"{name}: an open question without an answer"
    stubs = [source for kind, source in notebook if kind == "code" and "raise NotImplementedError" in source]
    assert stubs, f"{name}: no code exercise"
    solutions = "\n".join(source for _, source in cells(f"{name}_solutions", NOTEBOOKS / "solutions"))
    for stub in stubs:
        (module, check), = CHECK_IMPORT.findall(stub)
        assert CHECK_CALL.findall(stub) == [check], f"{name}: a stub must end by calling its check"
        assert callable(getattr(__import__(f"tmtlib.exercises.{module}", fromlist=[check]), check))
        assert re.search(rf"verdict = {check}\(\w+\)\nassert verdict", solutions), f"{check} unsolved in {name}"
