"""Run-wide settings read from the environment, in one place.

``TMT_QUICK=1`` shrinks data and training steps so that every notebook runs in CI in minutes;
``TMT_HOME`` moves the data cache (default: ``data/`` beside the package);
``TMT_MULTI30K_MIRROR`` points at a local copy of the Multi30k repository (see ``tmtlib.data``).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def quick_mode() -> bool:
    """True when ``TMT_QUICK`` is set to a true value: notebooks and experiments shrink."""
    return os.environ.get("TMT_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


def home() -> Path:
    """Root folder of downloaded corpora and caches (git-ignored parts of ``data/``)."""
    return Path(os.environ.get("TMT_HOME", REPO_ROOT / "data")).expanduser()


def cache_dir(kind: str) -> Path:
    """A cache sub-folder such as ``data/cache/spm``; created on first use."""
    path = home() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
