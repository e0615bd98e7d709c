"""Checks for the course's exercises: the learner's code against the library's reference, on real
data.

Every code exercise in a notebook ends with a call such as ``check_gaussian_kl(my_kl)``. A check
runs the learner's function on real inputs, compares it with ``tmtlib``'s own implementation and
returns a :class:`Verdict` that says *what* is wrong (a shape, a sign, a value off by how much, on
which input), not just ``False``. A function that still raises ``NotImplementedError`` is reported
as "not attempted yet", so a notebook with unsolved exercises still runs top to bottom.

One module per notebook topic (e.g. ``tmtlib.exercises.vae``); the model solutions live in
``notebooks/solutions/`` and the test command executes them, asserting that every check passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """The outcome of one exercise check: ``ok`` and a message for the learner."""

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        mark = "✓" if self.ok else "✗"
        return f"{mark} {self.exercise}: {self.message}"

    def _repr_markdown_(self) -> str:
        return ("**✓** " if self.ok else "**✗** ") + f"*{self.exercise}*: {self.message}"


class Mismatch(AssertionError):
    """Raised inside a check to report the first thing that differs from the reference."""


def expect(condition: bool, message: str) -> None:
    """Stop the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Mismatch(message)


def run_check(exercise: str, attempt: Callable[[], str]) -> Verdict:
    """Run ``attempt`` (which raises :class:`Mismatch` on the first difference and returns a
    success message otherwise) and turn the outcome into a :class:`Verdict`.

    ``NotImplementedError`` from the learner's code means the exercise is not attempted yet; any
    other exception is the learner's bug and is reported with its type and message.
    """
    try:
        return Verdict(exercise, True, attempt())
    except NotImplementedError:
        return Verdict(
            exercise, False, "not attempted yet: replace the `raise NotImplementedError` line"
        )
    except Mismatch as mismatch:
        return Verdict(exercise, False, str(mismatch))
    except Exception as error:  # the learner's code raised: say what and where it happened
        return Verdict(exercise, False, f"your code raised {type(error).__name__}: {error}")


def describe(value: Any) -> str:
    """A short description of a value for messages: shape and dtype for tensors."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"tensor of shape {tuple(shape)} ({getattr(value, 'dtype', '')})"
    return repr(value) if len(repr(value)) < 60 else type(value).__name__
