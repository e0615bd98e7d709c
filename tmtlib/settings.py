"""Run-wide settings read from the environment, in one place: no other tmtlib module reads it.

``TMT_QUICK=1`` shrinks data and training steps so that every notebook runs in CI in minutes;
``TMT_HOME`` moves the data cache (default: ``data/`` beside the package);
``TMT_MULTI30K_MIRROR`` points at a local copy of the Multi30k repository, ``TMT_MULTI30K_URL`` at
another server holding its layout (see ``tmtlib.data``); ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` are set by ``torchrun`` for each process of a distributed run.

Each is read when its function is called, never at import, so a notebook or test that changes
the environment sees the change.
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


MULTI30K_MIRROR = "TMT_MULTI30K_MIRROR"
MULTI30K_URL = "TMT_MULTI30K_URL"


def multi30k_mirror() -> str | None:
    """The folder named by ``TMT_MULTI30K_MIRROR`` (a copy of the multi30k/dataset repository), or
    None when unset: then ``tmtlib.data`` downloads."""
    return os.environ.get(MULTI30K_MIRROR) or None


def multi30k_url() -> str | None:
    """The base URL named by ``TMT_MULTI30K_URL`` (a server with the repository's layout), or None
    when unset: then ``tmtlib.data`` uses GitHub."""
    return os.environ.get(MULTI30K_URL) or None


def rank() -> int:
    """This process's rank in a ``torchrun`` launch (``RANK``); 0 outside one. Only rank 0 writes a
    run folder."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes a ``torchrun`` launch started (``WORLD_SIZE``); 1 outside one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``, the GPU it drives); 0 outside
    ``torchrun``."""
    return int(os.environ.get("LOCAL_RANK", "0"))
