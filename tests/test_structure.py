"""The shape of ``tmtlib``: no import cycle between its modules, and no module named like the
standard library's (a ``tmtlib/tokenize.py`` once shadowed ``tokenize`` for scripts run from
inside the package folder, and ``tokenize`` imported ``data`` which imported ``tokenize``); no
function longer than the house limit; no command-line option without a help text; and the code
clean under ruff with the repository's configuration (pyproject.toml's ``[tool.ruff]``).

Every import counts, at module level and inside functions (a late import only hides a cycle),
except those under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "tmtlib"
REPO_ROOT = PACKAGE_ROOT.parent


def module_files(package_root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for a package folder and all its subpackages."""
    base = package_root.parent
    modules = {}
    for path in sorted(package_root.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, but none under ``if TYPE_CHECKING:``."""
    found, pending = [], [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = (
            node.orelse
            if isinstance(node, ast.If) and _is_type_checking(node.test)
            else (ast.iter_child_nodes(node))
        )
        pending.extend(children)
    return found


def _from_base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from (``from .. import x`` in
    a.b.c -> ``a``)."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` (source at ``path``) imports.

    ``from P import x`` imports the submodule ``P.x`` when there is one, else the name ``x`` of
    ``P``'s ``__init__``, i.e. the module ``P``."""
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        base = _from_base(module, path.name == "__init__.py", node)
        found |= {
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names
        }
    return (found & known) - {module}


def import_graph(package_root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = module_files(package_root)
    return {module: imported_modules(module, path, set(files)) for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None: depth-first search for an edge back onto the
    path."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_tmtlib_has_no_import_cycle():
    graph = import_graph(PACKAGE_ROOT)
    assert {"tmtlib.data", "tmtlib.subwords", "tmtlib.pipeline"} <= set(graph)
    assert "tmtlib.subwords" in graph["tmtlib.data"]  # the graph sees imports at all
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in tmtlib: " + " -> ".join(cycle)


def test_no_tmtlib_module_shadows_the_standard_library():
    names = {
        module.rsplit(".", 1)[-1] for module in module_files(PACKAGE_ROOT) if module != "tmtlib"
    }
    shadowing = sorted(names & sys.stdlib_module_names)
    assert not shadowing, (
        f"tmtlib modules named like standard-library modules: {', '.join(shadowing)}"
    )


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(source))
    return root / "pkg"


def test_a_cycle_through_a_late_import_is_found(tmp_path):
    package = _fake_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/words.py": "from . import settings\n\ndef course():\n    from . import data\n",
            "pkg/data.py": "from .words import normalize\n",
            "pkg/settings.py": "import os\n",
        },
    )
    assert find_cycle(import_graph(package)) == ["pkg.data", "pkg.words", "pkg.data"]


@pytest.mark.parametrize(
    "line, cyclic",
    [
        ("from .. import lower", True),  # a submodule of the parent package
        ("from ..lower import thing", True),
        ("import pkg.lower", True),
        ("from pkg import lower", True),
        (
            "from .. import NAME",
            False,
        ),  # a name of pkg/__init__.py: an edge to pkg, not to pkg.lower
        ("if TYPE_CHECKING:\n    from .. import lower", False),
        (
            "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from .. import lower",
            True,
        ),
    ],
)
def test_each_form_of_import_is_resolved(tmp_path, line, cyclic):
    package = _fake_package(
        tmp_path,
        {
            "pkg/__init__.py": "NAME = 1\n",
            "pkg/lower.py": "from .sub.upper import thing\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/upper.py": f"from typing import TYPE_CHECKING\n{line}\nthing = 1\n",
        },
    )
    assert (find_cycle(import_graph(package)) is not None) == cyclic


# --- functions short enough to see whole, and a command line that explains itself -----------------

MAX_FUNCTION_LINES = 60  # the house limit: a function fits on one screen


def long_functions(package_root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``module.function (N lines)`` for every function or method of the package longer than
    ``limit`` lines, from its ``def`` line to its last line (docstring included, decorators not)."""
    found = []
    for module, path in module_files(package_root).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{module}.{node.name} ({lines} lines)")
    return sorted(found)


def test_no_tmtlib_function_is_longer_than_the_house_limit():
    long = long_functions(PACKAGE_ROOT)
    assert not long, f"tmtlib functions longer than {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_a_long_function_is_found_and_named(tmp_path):
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    package = _fake_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/long.py": f"class A:\n    def f(self):\n{body}",
            "pkg/short.py": "def g():\n    return 1\n",
        },
    )
    assert long_functions(package) == [f"pkg.long.f ({MAX_FUNCTION_LINES + 1} lines)"]


def options_without_help(parser, command: str = "tmt") -> list[str]:
    """``command --option`` for every option and positional argument of ``parser`` and its
    sub-commands, at any depth, that has no help text."""
    import argparse

    missing = []
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += options_without_help(sub, f"{command} {name}")
        elif not action.help:
            missing.append(f"{command} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_command_line_option_has_a_help_text():
    from tmtlib.cli import build_parser

    missing = options_without_help(build_parser())
    assert not missing, f"command-line options without a help text: {', '.join(missing)}"


def test_an_option_without_help_is_found_and_named():
    import argparse

    parser = argparse.ArgumentParser(prog="tmt")
    commands = parser.add_subparsers()
    commands.add_parser("run", help="run").add_argument("--fast", action="store_true")
    assert options_without_help(parser) == ["tmt run --fast"]


# --- lint: ruff with pyproject.toml's configuration (pycodestyle, pyflakes, import order) ---------

FINDING = re.compile(r"\S.*:\d+:\d+: [A-Z]+\d+ ")  # a line of ruff's concise output


def lint_findings(root: Path, config: Path | None = None) -> list[str]:
    """``ruff check``'s findings under ``root``, one ``path:line:column: CODE message`` each (paths
    relative to ``root``), with the configuration ruff finds there (or ``config``); no cache
    written into the checkout."""
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed: install the test extra (pip install -e '.[test]')")
    command = [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "--no-cache"]
    command += ["--config", str(config)] if config else []
    result = subprocess.run(
        [*command, str(root)], cwd=root, capture_output=True, text=True, timeout=120
    )
    if result.returncode not in (0, 1):  # 2: ruff itself failed (bad configuration, say)
        raise RuntimeError(f"ruff check failed (status {result.returncode}):\n{result.stderr}")
    return [line for line in result.stdout.splitlines() if FINDING.match(line)]


def test_the_code_is_clean_under_ruff():
    findings = lint_findings(REPO_ROOT)
    assert not findings, (
        f"{len(findings)} ruff findings (ruff format . and ruff check --fix . fix most of them):\n"
        + "\n".join(findings)
    )


def test_a_lint_finding_is_reported_with_its_place(tmp_path):
    (tmp_path / "bad.py").write_text("import os\n\nx = 1  " + "#" * 100 + "\n")
    findings = lint_findings(tmp_path, config=REPO_ROOT / "pyproject.toml")
    assert [finding.split(": ")[1].split()[0] for finding in findings] == ["F401", "E501"]
    assert findings[0].startswith("bad.py:1:8: F401"), findings


# --- the environment read in one place, and an import that changes nothing ----------------------

ENVIRONMENT_READERS = {"environ", "getenv", "putenv", "unsetenv", "environb"}


def environment_reads(package_root: Path, allowed: str = "settings") -> list[str]:
    """``module:line`` for every mention of ``os.environ``/``os.getenv`` (or a ``from os import``
    of them) in the package outside its ``allowed`` module: ``tmtlib.settings`` is the one place
    that reads the environment, so that every setting a run depends on is found and documented
    there."""
    found = []
    for module, path in module_files(package_root).items():
        if module.rsplit(".", 1)[-1] == allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            mentions = (
                isinstance(node, ast.Attribute)
                and node.attr in ENVIRONMENT_READERS
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and any(alias.name in ENVIRONMENT_READERS for alias in node.names)
            )
            if mentions:
                found.append(f"{module}:{node.lineno}")
    return sorted(found)


def test_only_settings_reads_the_environment():
    reads = environment_reads(PACKAGE_ROOT)
    assert not reads, f"environment read outside tmtlib.settings: {', '.join(reads)}"


def test_an_environment_read_outside_settings_is_found(tmp_path):
    package = _fake_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/settings.py": "import os\nHOME = os.environ.get('HOME')\n",
            "pkg/data.py": "import os\n\ndef mirror():\n    return os.getenv('MIRROR')\n",
            "pkg/train.py": "from os import environ\n",
        },
    )
    assert environment_reads(package) == ["pkg.data:4", "pkg.train:1"]


GLOBAL_STATE = """
import importlib, json, logging, os, pkgutil, sys, warnings
import torch

# what the libraries tmtlib builds on do when imported (IPython adds a warning filter) is theirs
for name in ("numpy", "IPython", "ipywidgets", "matplotlib", "sacrebleu", "sentencepiece", "tqdm"):
    importlib.import_module(name)

def state():
    return {
        "environ": dict(os.environ),
        "torch": [torch.get_num_threads(), torch.get_num_interop_threads(),
                  str(torch.get_default_dtype()), torch.are_deterministic_algorithms_enabled(),
                  torch.get_float32_matmul_precision(), torch.is_grad_enabled(),
                  torch.backends.cudnn.benchmark, torch.initial_seed()],
        "warnings": [repr(f) for f in warnings.filters],
        "logging": [logging.getLogger().level, len(logging.getLogger().handlers)],
    }

before = state()
import tmtlib
for found in pkgutil.walk_packages(tmtlib.__path__, "tmtlib."):
    if found.name != "tmtlib.__main__":  # that one runs the command line
        importlib.import_module(found.name)
after = state()
changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
if "environ" in changed:  # only the variables that changed
    old, new = changed["environ"]
    changed["environ"] = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
print(json.dumps(changed))
"""


def test_importing_tmtlib_changes_nothing_global():
    """Importing every tmtlib module leaves the environment, torch's global flags (threads, dtype,
    determinism, matmul precision, grad mode, seed), the warning filters and the root logger as
    they were (after importing the libraries it builds on, whose own habits are not tmtlib's): a
    library that someone imports into their own program must not reconfigure it."""
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_STATE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    changed = json.loads(result.stdout.splitlines()[-1])
    assert not changed, f"importing tmtlib changed global state: {changed}"
