"""Crash-safe checkpoints and run folders: written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads without
unpickling arbitrary objects. Writing goes to a temporary file in the same folder, named per
process, which is flushed and fsynced and then renamed over the old file (and the folder fsynced):
a crash at any moment leaves either the old checkpoint or the new one, never a damaged mix, and a
write that fails (no space left, a read-only folder) leaves the old one and no temporary file.
A run folder is locked for the run's lifetime (``run_folder_lock``): one run per folder. What a
training run keeps there (``last.pt`` to resume from, ``best.pt``, ``history.json``,
``progress.json``) is written and read back by ``TrainingCheckpoints``.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import torch

from . import settings


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, not one of ours, or cannot be written."""


class FolderBusy(CheckpointError):
    """Another process holds the run folder's lock."""


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, as on
    Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` durably via a temporary file named per process and an atomic rename.

    The bytes are flushed and fsynced before the rename and the folder after it, so after a
    crash or power loss the path holds the old file or the new one, never a mix. A failure (no
    space left, a read-only folder) removes the temporary file and raises one ``CheckpointError``
    naming the path and the reason; the old file stays as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with suppress(OSError):  # a read-only folder refuses even the removal of a file never made
            tmp.unlink(missing_ok=True)
        cause = _os_error(error) if isinstance(error, Exception) else None
        if cause is None:
            raise
        raise CheckpointError(f"cannot write {path}: {cause.strerror or cause}") from None
    _fsync_folder(path.parent)
    return path


def _os_error(error: BaseException | None) -> OSError | None:
    """The file-system error behind ``error`` (torch.save re-raises a full disk as a
    RuntimeError)."""
    while error is not None and not isinstance(error, OSError):
        error = error.__context__
    return error


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` durably and atomically (``_write_atomic``)."""
    return _write_atomic(path, lambda handle: torch.save(obj, handle))


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` durably and atomically (``_write_atomic``)."""
    return _write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` as UTF-8 durably and atomically, so that a reader (or a crash) finds the old
    file or the new one, never half of one; two processes never share a temporary file."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def write_json_atomic(value: Any, path: str | os.PathLike, indent: int | None = 1) -> Path:
    """Write ``value`` as JSON atomically (configs, histories, results): ``write_text_atomic``."""
    return write_text_atomic(json.dumps(value, indent=indent), path)


def check_writable(path: str | os.PathLike) -> Path:
    """Refuse, before any long work, an output file that cannot be written (by creating and
    removing a temporary file beside it): a ``CheckpointError`` naming the path and the reason."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write {path}: it is a directory")
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.open("wb").close()
        probe.unlink()
    except OSError as error:
        raise CheckpointError(f"cannot write {path}: {error.strerror or error}") from None
    return path


# --- one run per folder ---------------------------------------------------------------------------

_held: set[Path] = set()  # run folders this process has locked (a nested lock is a no-op)


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "another process"


@contextmanager
def run_folder_lock(folder: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """Hold ``folder/.lock`` for the body: one run per run folder.

    An OS file lock (``flock``), so it dies with its process: a killed run never leaves a
    stale lock. A second process is refused with a ``FolderBusy`` naming the holder (or, with
    ``wait``, waits for it). On taking the lock, temporary files that a killed writer left in the
    folder are removed. Under torchrun only rank 0 writes, so only rank 0 locks; where the OS has
    no ``flock`` (Windows) the folder is not locked.
    """
    folder = Path(folder).resolve()
    if folder in _held or fcntl is None or settings.rank() != 0:
        yield folder
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a+")
    except OSError as error:
        raise CheckpointError(
            f"cannot write to the run folder {folder}: {error.strerror or error}"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(
                f"{folder} is in use by {_holder(handle)}: wait for it to finish, "
                f"or choose another output folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%H:%M:%S')}\n"
        )
        handle.flush()
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        _held.add(folder)
        try:
            yield folder
        finally:
            _held.discard(folder)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_pickle(path: Path) -> bool:
    """Whether ``path`` starts with one complete pickle (parsed, never run)."""
    try:
        with open(path, "rb") as handle:
            for _ in pickletools.genops(handle):
                pass
    except Exception:  # genops raises ValueError, EOFError and others on bytes that are no pickle
        return False
    return True


def _refusal(path: Path, error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file: Python objects, or damage."""
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if isinstance(error, pickle.UnpicklingError) and (found or _is_pickle(path)):
        holds = (
            f"it holds a Python object ({found.group(1)})"
            if found
            else "it is a pickle of Python objects"
        )
        return (
            f"not a plain-weights checkpoint: {holds}, which could run code when loaded, so it "
            "is refused"
        )
    return (
        "not a readable checkpoint: damaged or partial file (corrupted or truncated?): "
        f"{type(error).__name__}"
    )


def read(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` any weights-only file, turning every failure into one clear
    ``CheckpointError``."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file (give e.g. {path / 'best.pt'})"
        )
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    try:
        # torch warns about the pickle protocol of a file it then refuses
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise CheckpointError(f"{path} is {_refusal(path, error)}") from None


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a tmtlib checkpoint: a dict holding at least the model's weights."""
    checkpoint = read(path, map_location)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a tmt checkpoint (it has no model weights)")
    return checkpoint


# --- a run folder's layout ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """Which file of a run folder holds what, and reading it back: the one place that knows.

    * ``config.json``: the run's settings (written by ``tmtlib.pipeline`` before training);
    * ``tokenizer.model``: the vocabulary the run was trained with;
    * ``last.pt``, ``best.pt``, ``history.json``, ``progress.json``: written while it trains
      (``TrainingCheckpoints``).
    """

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def tokenizer(self) -> Path:
        return self.path / "tokenizer.model"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def history(self) -> Path:
        return self.path / "history.json"

    @property
    def progress(self) -> Path:
        """The progress of ``last.pt``, written after it."""
        return self.path / "progress.json"

    def weights(self) -> Path:
        """The checkpoint to use the run with: ``best.pt``, or ``last.pt`` when the run evaluated
        nothing."""
        return self.best if self.best.exists() else self.last

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config.read_text())

    def read_history(self) -> dict[str, Any]:
        return json.loads(self.history.read_text())

    def read_progress(self) -> dict[str, Any] | None:
        """Where the run stands (step, epoch, elapsed seconds, tokens, why it stopped): from
        ``progress.json``, so that whether a run finished can be read without loading the
        checkpoint (model, optimiser and all), or from ``last.pt`` in a folder written before
        there was one; None when the run has not written a checkpoint yet."""
        if self.progress.exists():
            return json.loads(self.progress.read_text())
        if self.last.exists():
            return load(self.last)["progress"]
        return None

    def is_finished(self) -> bool:
        """Whether the run reached one of its stopping conditions."""
        progress = self.read_progress()
        return progress is not None and bool(progress.get("stopped"))


# --- a training run's checkpoints ----------------------------------------------------------------


@dataclass
class TrainingCheckpoints:
    """What one training run keeps in its run folder, and how a rerun resumes from it.

    * ``last.pt``: everything a rerun needs to continue exactly where this one stopped (model,
      optimiser, scheduler, RNG state, progress, training config, history, metadata), and beside
      it ``progress.json``;
    * ``best.pt``: the weights of the best evaluation so far, with its progress, the training
      config and the metadata (no optimiser: it is for use, not for resuming);
    * ``history.json``: the metrics so far, rewritten with either checkpoint.

    Every file is written atomically. ``folder`` None keeps nothing; under torchrun every process
    resumes but only the ``writer`` (rank 0) writes.
    """

    folder: Path | None
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_config: dict[str, Any]
    metadata: dict[str, Any]
    writer: bool = True

    def resume(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Load ``last.pt`` into the model, optimiser, scheduler and RNG, and return its
        (progress, history); None, with nothing changed, when the folder has no ``last.pt``."""
        if self.folder is None or not RunFolder(self.folder).last.exists():
            return None
        saved = load(RunFolder(self.folder).last)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"]["torch"])
        if "cuda" in saved["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved["rng"]["cuda"])
        return saved["progress"], saved["history"]

    def save_last(self, progress: dict[str, Any], history: dict[str, Any]) -> None:
        """Write ``last.pt``, ``progress.json`` and ``history.json``: the point a rerun resumes
        from."""
        if not self.writer or self.folder is None:
            return
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "progress": progress,
            "train_config": self.train_config,
            "history": history,
            **self.metadata,
        }
        files = RunFolder(self.folder)
        save_atomic(state, files.last)
        write_json_atomic(progress, files.progress)
        write_json_atomic(history, files.history, indent=None)

    def save_best(self, progress: dict[str, Any], history: dict[str, Any]) -> None:
        """Write ``best.pt`` (the weights, progress, training config and metadata) and
        ``history.json``."""
        if not self.writer or self.folder is None:
            return
        weights = {
            "model": self.model.state_dict(),
            "progress": progress,
            "train_config": self.train_config,
            **self.metadata,
        }
        files = RunFolder(self.folder)
        save_atomic(weights, files.best)
        write_json_atomic(history, files.history, indent=None)
