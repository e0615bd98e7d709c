"""Every notebook of the course has its five sections and 3-5 exercises; every code exercise has a
check in ``tmtlib.exercises`` that its stub calls and its solutions notebook asserts."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
COURSE = sorted(path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
STUB_CHECK = re.compile(r"^(?:print\()?(?:verdict = )?(check_\w+)\(", re.MULTILINE)
CHECK_IMPORT = re.compile(r"from tmtlib\.exercises\.(\w+) import ([\w, ()\n]+)")
EXERCISE = re.compile(r"^(?:#+ |\*\*)Exercise (\d+)", re.MULTILINE)


def cells(path: Path) -> list[tuple[str, str]]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [(cell["cell_type"], "".join(cell["source"])) for cell in notebook["cells"]]


def markdown(name: str) -> list[str]:
    return [source for kind, source in cells(NOTEBOOKS / f"{name}.ipynb") if kind == "markdown"]


def exercise_numbers(name: str) -> list[int]:
    return sorted({int(n) for text in markdown(name) for n in EXERCISE.findall(text)})


def test_the_course_has_eleven_notebooks_and_at_least_35_exercises():
    assert len(COURSE) == 11, COURSE
    counts = {name: len(exercise_numbers(name)) for name in COURSE}
    assert sum(counts.values()) >= 35, counts


@pytest.mark.parametrize("name", COURSE)
def test_opening_sections(name):
    opening = "\n".join(markdown(name)[:3]).lower()
    for part in ("learning goals", "prerequisites", "expected time"):
        assert part in opening, f"{name}: no '{part}' at the top"


@pytest.mark.parametrize("name", COURSE)
def test_closing_sections_in_order(name):
    texts = markdown(name)
    place = {}
    for section in ("recap", "exercises", "references"):
        found = [
            (i, m.start())
            for i, text in enumerate(texts)
            for m in re.finditer(rf"^#+ {section}\b", text, re.I | re.M)
        ]
        assert found, f"{name}: no '{section}' heading"
        place[section] = found[-1]
    assert place["recap"] < place["exercises"] < place["references"], f"{name}: {place}"
    links = re.findall(r"\]\(https?://", texts[place["references"][0]][place["references"][1] :])
    assert len(links) >= 3, f"{name}: {len(links)} linked references"


@pytest.mark.parametrize("name", COURSE)
def test_exercises_are_graded_and_open_questions_answered(name):
    numbers = exercise_numbers(name)
    assert 3 <= len(numbers) <= 5 and numbers == list(range(1, len(numbers) + 1)), (
        f"{name}: {numbers}"
    )
    text = "\n".join(markdown(name)).lower()
    for grade in ("reproduce", "open question"):
        assert grade in text, f"{name}: no '{grade}' exercise"
    assert "<details>" in text, f"{name}: an open question without a collapsed model answer"


@pytest.mark.parametrize("name", COURSE)
def test_every_code_exercise_has_a_check_and_an_asserted_solution(name):
    stubs = [
        source
        for kind, source in cells(NOTEBOOKS / f"{name}.ipynb")
        if kind == "code" and "raise NotImplementedError" in source
    ]
    assert stubs, f"{name}: no code exercise"
    solutions = "\n".join(
        source
        for kind, source in cells(NOTEBOOKS / "solutions" / f"{name}_solutions.ipynb")
        if kind == "code"
    )
    for stub in stubs:
        found = STUB_CHECK.findall(stub)
        assert len(found) == 1, f"{name}: a stub must call exactly one check, not {found}"
        check = found[0]
        modules = [
            module for module, names in CHECK_IMPORT.findall(stub + solutions) if check in names
        ]
        assert modules, f"{name}: {check} is not imported from tmtlib.exercises"
        assert callable(getattr(importlib.import_module(f"tmtlib.exercises.{modules[0]}"), check))
        assert re.search(
            rf"verdict = {check}\(\w+\)\n(?:print\(verdict\)\n)?assert verdict", solutions
        ), f"{name}: the solutions notebook does not assert {check}"


def test_readme_lists_every_notebook_with_its_exercise_count():
    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\d\d_\w+)` \|.*\| (\d+) \| [^|]* \|$", readme, re.MULTILINE))
    assert {name: int(count) for name, count in rows.items()} == {
        name: len(exercise_numbers(name)) for name in COURSE
    }
