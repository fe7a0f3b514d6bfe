"""A setting declared once: its dataclass field says the doc, the bounds and how the environment spells it.

`setting(default, doc=…)` makes the field; `read(cls, config)` reads every
declared field of `cls` from a starlette `Config`. The environment's name is
the field's, upper-cased (`session_max_age` → `SESSION_MAX_AGE`), and the cast
follows the field's type:

- `str`, `int`, `float`; `bool` as starlette reads it (`true`/`1`, `false`/`0`)
- `str | None`, `Secret | None`: stripped; empty is None
- `Secret`: empty is the default (a random key)
- `bool | None`: `true`, `false` or `auto` (None), and the like
- `tuple[str, ...]`: comma-separated, each part stripped, empty parts left out
- a dataclass (the call options): each of its fields is a setting of its own,
  named with the declared prefix (`VERIFY_` + `token_length`)

A variable that is not set leaves the field's default. `check(settings)`
refuses a value out of its declared bounds, or a list of limits that is none.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from limits import parse_many
from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Range:
    """The values a number may take; `says` is the message after the name when "must be between" is not it."""

    low: float | None = None
    high: float | None = None
    says: str = ""
    above: bool = False  # `low` itself is not allowed
    #: what the bounds count, after them in the message: "must be between 10 and 600 seconds"
    unit: str = ""

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def message(self, env: str) -> str:
        if self.says:
            return f"{env} {self.says}"
        unit = f" {self.unit}" if self.unit else ""
        if self.high is None:
            return f"{env} must be at least {self.low}{unit}"
        return f"{env} must be between {self.low} and {self.high}{unit}"


@dataclass(frozen=True)
class Declared:
    """What a setting's field says beyond its name, type and default."""

    doc: str
    bounds: Range | None = None
    #: A list of rate limits ("5/minute;20/hour").
    limits: bool = False
    #: Applied to a text value (or to each part of a list) once read: str.upper, say.
    clean: Callable[[str], str] | None = None
    #: A dataclass-valued setting: the environment's prefix of its fields, and their declarations.
    prefix: str = ""
    parts: Mapping[str, Declared] = field(default_factory=dict)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    bounds: Range | None = None,
    limits: bool = False,
    clean: Callable[[str], str] | None = None,
    prefix: str = "",
    parts: Mapping[str, Declared] | None = None,
) -> Any:
    """A dataclass field declared as a setting (see the module's docstring)."""
    declared = Declared(doc, bounds, limits, clean, prefix, parts or {})
    return field(default=default, default_factory=default_factory, metadata={"setting": declared})


def declarations(cls: type) -> Iterator[tuple[tuple[str, ...], str, Any, Declared]]:
    """(attribute path, environment name, type, declaration) of every setting of `cls`, nested ones flattened."""
    hints = get_type_hints(cls)
    for item in dataclasses.fields(cls):
        declared: Declared | None = item.metadata.get("setting")
        if declared is None:
            continue
        if declared.prefix:
            inner = get_type_hints(hints[item.name])
            for name, part in declared.parts.items():
                yield (item.name, name), declared.prefix + name.upper(), inner[name], part
        else:
            yield (item.name,), item.name.upper(), hints[item.name], declared


def environment_names(cls: type) -> list[str]:
    """Every variable the settings of `cls` are read from."""
    return [env for _, env, _, _ in declarations(cls)]


def read(cls: type, config: Config) -> dict[str, Any]:
    """The values `config` sets for the fields of `cls`, cast by their types (unset ones left out)."""
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, env, hint, declared in declarations(cls):
        value = _cast(config, env, hint, declared)
        if value is _UNSET:
            continue
        if len(path) == 1:
            values[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1]] = value
    hints = get_type_hints(cls)
    for name, parts in nested.items():
        values[name] = hints[name](**parts)
    return values


def check(settings: object) -> None:
    """Refuse a declared value out of its bounds, or a limits setting that is not a list of limits."""
    for path, env, _, declared in declarations(type(settings)):
        value: Any = functools.reduce(getattr, path, settings)
        if declared.bounds is not None and not declared.bounds.holds(value):
            raise ValueError(declared.bounds.message(env))
        if declared.limits:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(f"{env} is not a list of limits like '5/minute;20/hour': {value!r}") from None


def optional_bool(env: str, value: str) -> bool | None:
    """true / false / auto (None), as people write them."""
    text = value.strip().lower()
    if text in ("", "auto"):
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{env} must be true, false or auto, not {value!r}")


class _Unset:
    pass


_UNSET: Any = _Unset()


def _cast(config: Config, env: str, hint: Any, declared: Declared) -> Any:
    raw = config(env, default=None)
    if raw is None:
        return _UNSET
    text = str(raw)
    clean = declared.clean or (lambda part: part)
    optional = type(None) in get_args(hint) and get_origin(hint) in (Union, types.UnionType)
    inner = next((arg for arg in get_args(hint) if arg is not type(None)), hint) if optional else hint
    if inner is bool and optional:
        return optional_bool(env, text)
    if inner is Secret:
        value = text.strip() if optional else text
        if not value:
            return None if optional else _UNSET
        return Secret(value)
    if optional:  # str | None
        return clean(text.strip()) or None
    if get_origin(hint) is tuple:
        return tuple(clean(part.strip()) for part in CommaSeparatedStrings(text) if part.strip())
    if hint is bool:
        if text.lower() not in ("true", "1", "false", "0"):
            raise ValueError(f"Config '{env}' has value '{text}'. Not a valid bool.")
        return text.lower() in ("true", "1")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"Config '{env}' has value '{text}'. Not a valid {hint.__name__}.") from None
    return clean(text)
