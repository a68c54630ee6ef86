"""Stage configuration resolved: a YAML/TOML file and command-line flags through one pydantic model. Former keys,
flags and values are renamed with one warning line each; unknown keys are refused with a suggestion."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stages.contract.errors import UsageError, first_line
from stages.contract.meta import CONFIG_FILE
from stages.runtime.config import (
    SPELLING,
    Flag,
    Section,
    cli_of,
    deprecation,
    nested_model,
    plan_flags,
    section_of,
    spelling,
)
from stages.runtime.console import log

C = TypeVar("C", bound=BaseModel)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) mapping; keys may use dashes or underscores, at any depth, but a
    key given twice (in either spelling) is refused."""
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.load(text, Loader=_unique_keys_loader(path))  # a SafeLoader subclass: no tags that run code
    except UsageError:
        raise
    except (tomllib.TOMLDecodeError, ValueError) as err:
        raise UsageError(
            f"{path}: not valid {path.suffix.lstrip('.').upper() or 'YAML'} ({first_line(err)})"
        ) from None
    except Exception as err:  # yaml.YAMLError without importing yaml at module load
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must hold a mapping of option names to values")
    return _underscored(data, path)


def _unique_keys_loader(path: Path) -> Any:
    """A YAML SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                if isinstance(key, str | int | float | bool) and key in seen:
                    raise UsageError(f"{path}:{line}: key '{key}' is given twice (first on line {seen[key]})")
                if isinstance(key, str | int | float | bool):
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeys


def _underscored(data: dict[Any, Any], path: Path, where: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in spelled:
            raise UsageError(f"{path}: '{where}{spelled[name]}' and '{where}{key}' are the same setting; keep one")
        spelled[name] = str(key)
        result[name] = _underscored(value, path, f"{where}{key}.") if isinstance(value, dict) else value
    return result


def rebased(value: str, kind: str, folder: Path, exists: Callable[[Path], bool] = Path.exists) -> str:
    """A setting's file as a config file in `folder` names it: a relative path is taken from that folder, a
    `local` name only where that folder holds it (else it is a hub name), `fn` only in its file part.

    >>> rebased("rewards.py:score", "fn", Path("/cfg")), rebased("pkg.mod:score", "fn", Path("/cfg"))
    ('/cfg/rewards.py:score', 'pkg.mod:score')
    >>> rebased("rubric.txt", "file", Path("/cfg")), rebased("/abs/rubric.txt", "file", Path("/cfg"))
    ('/cfg/rubric.txt', '/abs/rubric.txt')
    >>> rebased("Qwen/Qwen2.5-0.5B", "local", Path("/cfg"), exists=lambda p: False)
    'Qwen/Qwen2.5-0.5B'
    >>> rebased("models/tiny", "local", Path("/cfg"), exists=lambda p: p == Path("/cfg/models/tiny"))
    '/cfg/models/tiny'
    """
    if kind == "fn":
        target, colon, name = value.rpartition(":")
        if colon and (target.endswith(".py") or "/" in target):
            return rebased(target, "file", folder, exists) + ":" + name
        return value
    if not value or value.startswith("~") or Path(value).is_absolute():
        return value
    if kind == "local" and not exists(folder / value):
        return value
    return str(folder / value)


def rebase_paths(values: dict[str, Any], plan: list[Flag], folder: Path) -> None:
    """Rewrite, in place, the files a config file's `values` name (settings declared with `path=`) relative to
    `folder`, the config file's own, rather than to the working folder."""
    for flag in plan:
        kind = cli_of(flag.field).path
        holder: Any = values
        for part in flag.path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if kind and isinstance(holder, dict) and isinstance(holder.get(flag.name), str):
            holder[flag.name] = rebased(holder[flag.name], kind, folder)


def resolve_config(
    model: type[C],
    file_values: dict[str, Any],
    flags: dict[str, Any],
    source: str = "config",
    warn: Callable[[str], None] = log.warning,
    config_file: Path | None = None,
) -> C:
    """Build the model from file values overridden by flags (both nested as the model is); every problem is
    reported in one message, each setting named by its flag. Former names and values are accepted with a
    warning through `warn`. The files `config_file` (where the file values came from) names are taken from its
    folder, and the result remembers it for the meta."""
    plan = plan_flags(model)
    values = modern_keys(model, file_values, plan, source, warn)
    if config_file is not None:
        rebase_paths(values, plan, Path(os.path.abspath(config_file)).parent)
    for flag in plan:  # a section set by no key (or an empty one) still reports its own missing settings
        target: Any = values
        for part in flag.path[:-1]:
            if isinstance(target, dict):
                if target.get(part) is None:
                    target[part] = {}
                target = target[part]
    values = _merged(values, flags)
    current_values(values, plan, warn)
    try:
        config = model.model_validate(values, context={SPELLING: spelling(plan)})
    except ValidationError as err:
        raise UsageError("invalid settings: " + "; ".join(_problems(err, plan))) from None
    if config_file is not None:
        object.__setattr__(config, CONFIG_FILE, str(Path(os.path.abspath(config_file))))
    return config


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def _problems(err: ValidationError, plan: list[Flag]) -> list[str]:
    labels = {flag.path: flag.label for flag in plan}
    problems = []
    for error in err.errors():
        message = error["msg"].removeprefix("Value error, ")
        loc = tuple(str(part) for part in error["loc"])
        if loc not in labels and (not loc or error["type"] == "value_error"):
            problems.append(message)  # a check across settings: its message names the flags itself
            continue
        label = labels.get(loc, ".".join(loc))
        message = message[:1].lower() + message[1:]
        problems.append(f"{label} is required" if error["type"] == "missing" else f"{label}: {message}")
    return problems


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
