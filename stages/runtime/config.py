"""Stage configuration declared: one pydantic model per stage gives the flags, the config-file keys and the meta
(`stages.runtime.resolve` builds it from a file and flags).

A setting is declared with `setting(...)`, which keeps how it appears on the command line in a typed `Cli` object
beside pydantic's own constraints; a nested settings model is declared with `section(...)`, which says how its
fields become flags. `plan_flags` turns a model into its flags, and both the CLI and the error messages use it.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationInfo
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

KEPT_UNTIL = "0.2"
"""The release that drops the former spellings of renamed flags, config keys and values."""

SPELLING = "rrhf.flags"
"""Validation-context key: {(settings model, field): flag} as the running command spells its flags."""


@dataclass(frozen=True)
class Cli:
    """How a setting appears on the command line and in a run's identity."""

    flags: tuple[str, ...] = ()  # replace the derived flag: `-k`, not `--k`; `--as`, not `--as-name`
    aliases: tuple[str, ...] = ()  # extra spellings beside the flag
    metavar: str | None = None
    # Changes how a run goes (concurrency, timeouts, failure policy), not what it writes: a rerun that changes
    # only such settings resumes the journal.
    operational: bool = False
    shown: bool = True  # False: a config file sets it, no flag does
    deprecated: tuple[str, ...] = ()  # former names (config key and flag), accepted with a warning
    former_values: tuple[tuple[str, str], ...] = ()  # (former value, its new spelling)
    # A file the setting names, which a config file gives relative to its own folder: "file" (a path), "local"
    # (a local folder or else a hub name), "fn" (the file of `path/to/file.py:function`).
    path: Literal["", "file", "local", "fn"] = ""


@dataclass(frozen=True)
class Section:
    """How a nested settings model's fields become flags of the command holding it: `--{prefix}{flag}`, except
    the fields in `keep`, which keep their own flag; `hidden` fields are set by the command, not by the user."""

    prefix: str = ""
    keep: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    deprecated: tuple[tuple[str, str], ...] = ()  # (the command's former name, the field it now is)


def setting(
    default: Any = PydanticUndefined,
    description: str = "",
    *,
    flags: Iterable[str] = (),
    aliases: Iterable[str] = (),
    metavar: str | None = None,
    operational: bool = False,
    shown: bool = True,
    deprecated: Iterable[str] = (),
    former_values: Iterable[tuple[str, str]] = (),
    path: Literal["", "file", "local", "fn"] = "",
    **constraints: Any,
) -> Any:
    """A config field (pydantic's `Field` with `constraints`) and how the command line shows it."""
    field: FieldInfo = Field(default, description=description, **constraints)
    field.metadata.append(Cli(tuple(flags), tuple(aliases), metavar, operational, shown, tuple(deprecated),
                              tuple(former_values), path))
    return field


def section(
    description: str = "",
    *,
    prefix: str = "",
    keep: Iterable[str] = (),
    hidden: Iterable[str] = (),
    deprecated: Iterable[tuple[str, str]] = (),
    **kwargs: Any,
) -> Any:
    """A nested settings model's field, and how its fields become the holding command's flags."""
    field: FieldInfo = Field(description=description, **kwargs)
    field.metadata.append(Section(prefix, tuple(keep), tuple(hidden), tuple(deprecated)))
    return field


def cli_of(field: FieldInfo) -> Cli:
    """The command-line metadata of a field (the defaults where it was declared without `setting`)."""
    return next((m for m in field.metadata if isinstance(m, Cli)), Cli())


def section_of(field: FieldInfo) -> Section | None:
    """How a nested settings model's fields become flags, or None where the field was not declared a section."""
    return next((m for m in field.metadata if isinstance(m, Section)), None)


def borrowed(model: type[BaseModel], name: str, **changes: Any) -> Any:
    """Another config's field definition (description, constraints, command-line metadata), with `changes` such as
    another description: so a setting shared by two configs is described in one place."""
    return FieldInfo.merge_field_infos(model.model_fields[name], **changes)


def is_operational(field: FieldInfo) -> bool:
    """Whether a config field is declared `operational`."""
    return cli_of(field).operational


def outcome_settings(config: BaseModel) -> dict[str, Any]:
    """The settings that decide what a run writes: every field but the operational ones."""
    fields = type(config).model_fields
    return {k: v for k, v in config.model_dump(mode="json").items() if not is_operational(fields[k])}


def flag_name(field: str) -> str:
    """The command-line flag of a config key: `max_new_tokens` -> `--max-new-tokens`."""
    return "--" + field.replace("_", "-")


@dataclass(frozen=True)
class Flag:
    """One setting as a command's flag: where it sits in the config and how the command spells it."""

    path: tuple[str, ...]  # ("score", "model") for a section's field
    model: type[BaseModel]  # the settings model holding the field
    field: FieldInfo
    decls: tuple[str, ...]  # click's declarations: `-k`; `--bf16/--no-bf16`
    former: tuple[str, ...]  # deprecated spellings, accepted with a warning

    @property
    def name(self) -> str:
        """The field's name in its model."""
        return self.path[-1]

    @property
    def dest(self) -> str:
        """The parameter name the CLI gives it."""
        return "__".join(self.path)

    @property
    def label(self) -> str:
        """The flag that messages name: the first long spelling."""
        spellings = [s for decl in self.decls for s in decl.split("/")]
        return next((s for s in spellings if s.startswith("--")), spellings[0])


def plan_flags(model: type[BaseModel]) -> list[Flag]:
    """Every flag a settings model gives a command, own settings first; a nested model expands through its
    `section(...)`. TypeError, when the command is defined, for a field no flag can carry and no `shown=False`
    hides, a nested model declared without `section`, or two settings spelled alike."""
    flags = _plan(model, (), Section())
    taken: dict[str, Flag] = {}
    for flag in flags:
        for spelling in (s for decl in (*flag.decls, *flag.former) for s in decl.split("/")):
            if spelling in taken:
                raise TypeError(f"{model.__name__}: {spelling} would set both {'.'.join(taken[spelling].path)} and "
                                f"{'.'.join(flag.path)}; give one of them other flags")
            taken[spelling] = flag
    return flags


def _plan(model: type[BaseModel], path: tuple[str, ...], where: Section) -> list[Flag]:
    flags: list[Flag] = []
    for name in _own_fields_first(model):
        field = model.model_fields[name]
        meta = cli_of(field)
        if name in where.hidden or not meta.shown:
            continue
        nested = nested_model(field.annotation)
        if nested is not None:
            inner = section_of(field)
            if inner is None:
                raise TypeError(f"{model.__name__}.{name}: a nested settings model needs section(prefix=...) to say "
                                "how its fields become flags, or shown=False to leave it to config files")
            flags += _plan(nested, (*path, name), inner)
            continue
        if flag_type(field.annotation) is None:
            raise TypeError(f"{model.__name__}.{name}: no flag can carry a {field.annotation}; declare it with "
                            "shown=False to leave it to config files")
        former = _former(name, meta, where, nested=bool(path))
        flags.append(Flag((*path, name), model, field, _decls(name, field, meta, where), former))
    return flags


def _decls(name: str, field: FieldInfo, meta: Cli, where: Section) -> tuple[str, ...]:
    own = list(meta.flags) or [flag_name(name)]
    if where.prefix and name not in where.keep:
        stem = next((f for f in own if f.startswith("--")), flag_name(name))[2:]
        own = [f"--{where.prefix}{stem}"]
    elif not where.prefix:
        own += meta.aliases
    if flag_type(field.annotation) is bool:
        return tuple(f"{f}/--no-{f[2:]}" if f.startswith("--") else f for f in own)
    return tuple(own)


def _former(name: str, meta: Cli, where: Section, nested: bool) -> tuple[str, ...]:
    # A stage's former names are its own; a command holding it as a section says which it had itself.
    names = [old for old, new in where.deprecated if new == name] if nested else list(meta.deprecated)
    return tuple(flag_name(old) for old in names)


def _own_fields_first(model: type[BaseModel]) -> list[str]:
    # Settings groups a config inherits (API, vLLM: plain models of their own) come after the stage's own
    # settings in --help, also where a command's section narrows a stage's config.
    groups = [base for base in model.__mro__[1:] if base.__bases__ == (BaseModel,)]
    inherited = {name for base in groups for name in base.model_fields}
    return sorted(model.model_fields, key=lambda name: name in inherited)


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (itself or optional), else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return nested_model(args[0]) if len(args) == 1 else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def flag_type(annotation: Any) -> Any:
    """The type a flag of this field takes, or None where no flag can carry it."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return flag_type(args[0]) if len(args) == 1 else None
    if origin is Literal:
        return annotation
    if origin is list:
        return annotation if get_args(annotation)[0] in (str, int, float) else None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    return annotation if annotation in (str, int, float, bool, Path) else None


def spelling(flags: Iterable[Flag]) -> dict[tuple[type[BaseModel], str], str]:
    """{(settings model, field): flag}, the validation context that lets a stage's messages name the flags as the
    running command spells them."""
    return {(flag.model, flag.name): flag.label for flag in flags}


def flag_of(model: type[BaseModel], info: ValidationInfo | None, name: str) -> str:
    """The flag of setting `name` of `model` as the running command spells it: for a validator's message."""
    context = info.context if info is not None else None
    spelled = context.get(SPELLING, {}) if isinstance(context, dict) else {}
    if (model, name) in spelled:
        return spelled[(model, name)]
    own = cli_of(model.model_fields[name]).flags
    return next((f for f in own if f.startswith("--")), own[0] if own else flag_name(name))


def deprecation(former: str, current: str) -> str:
    """The one line that says a former spelling still works, for now."""
    return f"{former} is deprecated; use {current} (kept until {KEPT_UNTIL})"


def comma_names(value: Any) -> Any:
    """A list setting of names as `--flag a,b` or a config file's list gives it, split into its names (`mode="before"`
    validator); ValueError where a name is empty."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return value
    names = [part.strip() for item in items for part in str(item).split(",")]
    if any(not name for name in names):
        raise ValueError("names must not be empty")
    return names
