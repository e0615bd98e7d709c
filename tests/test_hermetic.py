"""The test session keeps out of the checkout: its home (downloads, tokenizers, trained runs) is a
temporary folder unless ``TMT_HOME`` names one (the root ``conftest.py``), and the processes tests
start inherit it. ``.ci/run`` checks the rest after the whole command: no new or changed file in the
checkout, nothing new in its data caches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tmtlib import settings


def test_a_process_started_by_a_test_inherits_the_session_home():
    child = subprocess.run(
        [sys.executable, "-c", "from tmtlib import settings; print(settings.home())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(child.stdout.strip()) == settings.home()
