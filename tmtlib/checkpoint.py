"""Crash-safe checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads without
unpickling arbitrary objects. Writing goes to a temporary file in the same folder, which is
flushed to disk and then renamed over the old file: a crash at any moment leaves either the old
checkpoint or the new one, never a damaged mix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or not one of ours."""


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` via a temporary file and an atomic rename, so that a reader (or a crash)
    finds the old file or the new one, never half of one; the temporary file is named per
    process, so two runs of a family writing the same summary never share it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json_atomic(value: Any, path: str | os.PathLike, indent: int | None = 1) -> Path:
    """Write ``value`` as JSON atomically (configs, histories, results): ``write_text_atomic``."""
    return write_text_atomic(json.dumps(value, indent=indent), path)


def read(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` any weights-only file, turning every failure into one clear ``CheckpointError``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise CheckpointError(f"{path} is not a readable checkpoint: damaged or partial file "
                              f"(corrupted or truncated?): {type(error).__name__}") from None


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a tmtlib checkpoint: a dict holding at least the model's weights."""
    checkpoint = read(path, map_location)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a tmt checkpoint (it has no model weights)")
    return checkpoint
