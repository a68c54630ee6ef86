"""Config-file keys and values under their current names: former names and values are renamed with one warning
line each, unknown keys refused with a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from stages.contract.errors import UsageError
from stages.runtime.config import Flag, Section, cli_of, deprecation, nested_model, section_of


def modern_keys(
    model: type[BaseModel], values: dict[str, Any], plan: list[Flag], source: str, warn: Callable[[str], None]
) -> dict[str, Any]:
    """`values` (a config file's mapping) with former keys renamed, and a former flat key of a section's setting
    (eval's `temperature:`, now `sample: temperature:`) moved into its section; UsageError for unknown keys."""
    flat = _flat_keys(plan)
    unknown: list[tuple[str, str]] = []  # (dotted key, a suggestion)
    result = _modern(model, values, Section(), (), warn, unknown)
    for key in [k for k, _ in unknown if "." not in k and k in flat]:
        path = flat[key]
        warn(deprecation(f"config key '{key}'", f"'{': '.join(path)}:'"))
        result.setdefault(path[0], {})
        if isinstance(result[path[0]], dict):
            result[path[0]].setdefault(path[1], values[key])
        unknown = [(k, hint) for k, hint in unknown if k != key]
    if unknown:
        named = ", ".join(f"'{key}'{hint}" for key, hint in unknown)
        raise UsageError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {named}")
    return result


def _modern(
    model: type[BaseModel],
    values: dict[str, Any],
    where: Section,
    path: tuple[str, ...],
    warn: Callable[[str], None],
    unknown: list[tuple[str, str]],
) -> dict[str, Any]:
    known = [name for name in model.model_fields if name not in where.hidden]
    former = {old: name for name in known for old in cli_of(model.model_fields[name]).deprecated}
    former.update((old, name) for old, name in where.deprecated if name in known)
    result: dict[str, Any] = {}
    for key, value in values.items():
        name = key
        if key not in known and key in former:
            name = former[key]
            warn(deprecation(f"config key '{'.'.join((*path, key))}'", f"'{name}'"))
        if name not in known:
            close = difflib.get_close_matches(key, known, n=1)
            unknown.append((".".join((*path, key)), f" (did you mean '{close[0]}'?)" if close else ""))
            continue
        field = model.model_fields[name]
        nested, inner = nested_model(field.annotation), section_of(field)
        if nested is not None and isinstance(value, dict):
            value = _modern(nested, value, inner or Section(), (*path, name), warn, unknown)
        result[name] = value
    return result


def _flat_keys(plan: list[Flag]) -> dict[str, tuple[str, ...]]:
    # A section's setting by the key its flag spells at the top level: `--scorer-model` -> `scorer_model`.
    return {
        spelling[2:].replace("-", "_"): flag.path
        for flag in plan
        if len(flag.path) == 2
        for spelling in (flag.label, *flag.former)
    }


def current_values(values: dict[str, Any], plan: list[Flag], warn: Callable[[str], None]) -> None:
    """Replace, in place, a former value of a setting (`--engine transformers`) by its current one."""
    for flag in plan:
        renamed = dict(cli_of(flag.field).former_values)
        holder: Any = values
        for part in flag.path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or not isinstance(holder.get(flag.name), str):
            continue
        if holder[flag.name] in renamed:
            old = holder[flag.name]
            holder[flag.name] = renamed[old]
            warn(deprecation(f"{flag.label} {old}", f"{flag.label} {renamed[old]}"))
