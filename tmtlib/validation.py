"""Settings that check themselves: every field of a settings dataclass has a type and a range.

A field declared with ``setting(default, at_least=1, help="...")`` (or ``above``, ``below``,
``at_most``, ``choices``) carries its limits and its meaning in the dataclass metadata: the one
place a setting is described, from which ``describe`` writes the command line's help (``tmtlib.cli``
builds its training flags from these fields). ``check_fields`` (called from
``__post_init__``) tests every field against its type hint and those limits, so a bad value is
refused when the settings are built, whether they come from flags, a config file or Python,
long before the first training step. ``from_plain`` builds settings from JSON/TOML data (lists
become tuples, tables become nested settings) and refuses what does not fit: a string where a
number belongs, a float where an int belongs, a scalar where a table belongs.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any


class SettingError(ValueError):
    """A setting of the wrong type or outside its range; the message names the field."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    choices: tuple | None = None,
    pattern: str | None = None,
    nonempty: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with limits (a string ``pattern`` must match whole; a tuple value has each
    item checked against them) and ``help``: what the setting means, in a few words (the command
    line's help text; ``describe`` adds the choices, limits and default)."""
    limits = {
        "at_least": at_least,
        "above": above,
        "at_most": at_most,
        "below": below,
        "choices": choices,
        "pattern": pattern,
        "nonempty": nonempty,
        "help": help,
    }
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        metadata={k: v for k, v in limits.items() if v is not None and v is not False},
    )


LIMIT_WORDS = {"at_least": "at least", "above": "above", "at_most": "at most", "below": "below"}


def plain_text(value: Any) -> str:
    """A setting's value as it is written on the command line: ``en de`` for a tuple, ``none``."""
    if isinstance(value, tuple):
        return " ".join(map(plain_text, value))
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return str(value)


def describe(f: dataclasses.Field, default: Any) -> str:
    """The help text of the field ``f`` of a settings dataclass: its meaning, then its choices,
    limits and ``default``, e.g. ``evaluations without improvement before stopping early; none:
    never [at least 1; default: none]``."""
    limits = (
        [f"one of {', '.join(map(str, f.metadata['choices']))}"] if "choices" in f.metadata else []
    )
    limits += [
        f"{words} {f.metadata[key]}" for key, words in LIMIT_WORDS.items() if key in f.metadata
    ]
    return f"{f.metadata['help']} [{'; '.join([*limits, f'default: {plain_text(default)}'])}]"


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        count = "" if args[-1] is Ellipsis else f"{len(args)} "
        return (
            "a list (tuple) of "
            f"{count}{_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s"
        )
    return {
        type(None): "null",
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
    }.get(hint, getattr(hint, "__name__", str(hint)))


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` (bool is not an int; an int is a float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        return (
            isinstance(value, tuple)
            and len(items) == len(value)
            and all(map(_matches, value, items))
        )
    if hint is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _limit_problem(name: str, item: Any, limits: Mapping[str, Any]) -> str | None:
    """Why one value of the field ``name`` breaks the limits, or None."""
    if "choices" in limits and item not in limits["choices"]:
        return (
            f"unknown {name} {item!r}: {name} must be one of "
            f"{', '.join(map(str, limits['choices']))}"
        )
    if "pattern" in limits and not re.fullmatch(limits["pattern"], item):
        return f"unknown {name} {item!r}: {name} must match {limits['pattern']}"
    tests = {
        "at_least": lambda x, lim: x >= lim,
        "above": lambda x, lim: x > lim,
        "at_most": lambda x, lim: x <= lim,
        "below": lambda x, lim: x < lim,
    }
    for key, ok in tests.items():
        if key in limits and not ok(item, limits[key]):
            return f"{name} must be {LIMIT_WORDS[key]} {limits[key]}, not {item!r}"
    return None


def check_fields(settings: Any) -> None:
    """Check every field of the dataclass instance ``settings`` against its type hint and limits."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value, limits = getattr(settings, f.name), f.metadata
        if not _matches(value, hints[f.name]):
            raise SettingError(f"{f.name} must be {_type_name(hints[f.name])}, not {value!r}")
        if value is None:
            continue
        if limits.get("nonempty") and not value:
            raise SettingError(f"{f.name} must not be empty")
        for item in value if isinstance(value, tuple) else (value,):
            problem = _limit_problem(f.name, item, limits)
            if problem:
                raise SettingError(problem)


def _plain_value(name: str, value: Any, hint: Any) -> Any:
    """``value`` from JSON/TOML as the field ``hint`` wants it: lists as tuples, tables as
    settings."""
    if dataclasses.is_dataclass(hint) and not isinstance(value, hint):
        if not isinstance(value, Mapping):
            raise SettingError(f"{name} must be a table of {hint.__name__} settings, not {value!r}")
        return from_plain(hint, value)
    wants_tuple = any(typing.get_origin(arg) is tuple for arg in (hint, *typing.get_args(hint)))
    return tuple(value) if wants_tuple and isinstance(value, list) else value


def from_plain(cls: type, raw: Mapping[str, Any], base: Any = None) -> Any:
    """Build the settings dataclass ``cls`` from plain data (on top of ``base`` if given);
    unknown keys and values of the wrong type or range are a ``SettingError``."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise SettingError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(cls)
    values = {name: _plain_value(name, value, hints[name]) for name, value in raw.items()}
    return dataclasses.replace(base, **values) if base is not None else cls(**values)
