"""Stage configuration: a YAML/TOML file and command-line flags resolved through one pydantic model."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from stages.contract.errors import UsageError, first_line

C = TypeVar("C", bound=BaseModel)

OPERATIONAL = {"operational": True}
"""`json_schema_extra` of a setting that changes how a run goes (concurrency, timeouts, failure policy), not
what it writes: a rerun that changes only such settings resumes the journal."""


def borrowed(model: type[BaseModel], name: str, **changes: Any) -> Any:
    """Another config's field definition (description, constraints), with `changes` such as another default:
    for a command that passes settings on to a stage, so each setting is described in one place."""
    return FieldInfo.merge_field_infos(model.model_fields[name], **changes)


def is_operational(field: FieldInfo) -> bool:
    """Whether a config field is marked OPERATIONAL."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("operational"))


def outcome_settings(config: BaseModel) -> dict[str, Any]:
    """The settings that decide what a run writes: every field but the operational ones."""
    fields = type(config).model_fields
    return {k: v for k, v in config.model_dump(mode="json").items() if not is_operational(fields[k])}


def flag_name(field: str) -> str:
    """The command-line flag of a config key: `max_new_tokens` -> `--max-new-tokens`."""
    return "--" + field.replace("_", "-")


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) mapping; keys may use dashes or underscores."""
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
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
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve_config(model: type[C], file_values: dict[str, Any], flags: dict[str, Any], source: str = "config") -> C:
    """Build the model from file values overridden by flags; every problem is reported in one message."""
    known = set(model.model_fields)
    unknown = [key for key in file_values if key not in known]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise UsageError(f"{source}: unknown key{'s' if len(hints) > 1 else ''} {', '.join(hints)}")
    values = {**file_values, **flags}
    try:
        return model.model_validate(values)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            message = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # a check across settings: its message names the flags itself
                problems.append(message)
                continue
            key = str(error["loc"][0])
            message = message[:1].lower() + message[1:]
            label = f"{flag_name(key)}" if key in known else key
            problems.append(f"{label} is required" if error["type"] == "missing" else f"{label}: {message}")
        raise UsageError("invalid settings: " + "; ".join(problems)) from None
