"""CI cost: wall-clock time of the README test command, split into pytest and each notebook.

    python -m bench.ci_cost          # runs the whole test suite once (quick mode), about 6 minutes

Each part runs in its own ``python -m pytest`` process, as CI would, with the repository's
pytest settings (quick mode, nbval). Writes ``bench/results/ci_cost.json``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from . import common

ROOT = Path(__file__).resolve().parents[1]


def timed(target: str) -> tuple[float, bool]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", target], cwd=ROOT, capture_output=True, text=True
    )
    return time.perf_counter() - started, done.returncode == 0


def main() -> None:
    targets = [
        "tests",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb")),
    ]
    parts = {}
    for target in targets:
        seconds, passed = timed(target)
        parts[target] = {"seconds": round(seconds, 1), "passed": passed}
        print(f"{target:55} {seconds:7.1f} s {'passed' if passed else 'FAILED'}", flush=True)
    total = sum(part["seconds"] for part in parts.values())
    print(f"{'total (pytest + nbval, quick mode)':55} {total:7.1f} s")
    print(
        "wrote",
        common.save(
            "ci_cost", {"versions": common.versions(), "parts": parts, "total_seconds": total}
        ),
    )


if __name__ == "__main__":
    main()
