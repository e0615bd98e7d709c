"""Test-session setup shared by pytest (tests/) and nbval (notebooks/).

Notebooks always run in quick mode under the test command, and the Multi30k mirror beside the
checkout (``../shared/data/multi30k``, as on CI) is used when no other source is configured.
Unless ``TMT_HOME`` is set, the whole session shares one temporary home for downloads, the
tokenizer and trained runs, so no test writes into the checkout and the tokenizer is trained once.
The kernels nbval starts inherit this environment.

The test command runs on every core (pytest-xdist, ``-n auto --dist loadfile``: a notebook's cells
stay together in one worker); each worker, and each kernel it starts, then computes on one thread,
so workers do not compete for cores. Runs that two workers need at once are trained once: the run
cache makes the second wait (``tmtlib.pipeline.cached_run``).
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TMT_QUICK", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
_mirror = Path(__file__).resolve().parent.parent / "shared" / "data" / "multi30k"
if "TMT_MULTI30K_MIRROR" not in os.environ and _mirror.is_dir():
    os.environ["TMT_MULTI30K_MIRROR"] = str(_mirror)
if "TMT_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="tmt-test-home-")
    os.environ["TMT_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
