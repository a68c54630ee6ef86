"""Shared option types and the decorator that turns a stage's config model into command-line flags."""

from __future__ import annotations

import enum
import functools
import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from stages.contract.errors import UsageError
from stages.contract.formats import InputOptions, parse_field_map
from stages.runtime.config import flag_name, load_config_file, resolve_config
from stages.runtime.console import setup_logging

InputArg = Annotated[
    str, typer.Argument(help="Input: .jsonl, .json, .csv, .parquet, or hf:NAME[:CONFIG][:SPLIT].", metavar="INPUT")
]
OutputOpt = Annotated[
    Path, typer.Option("-o", "--output", help="Artifact to write (JSONL); a FILE.meta.json sidecar goes beside it.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Start over, discarding a journal left by an interrupted run.")]
CheckpointForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Start over, deleting the checkpoint-* folders an earlier run left in OUTDIR (--resume continues them).",
    ),
]
InputFormat = Literal["auto", "rrhf", "trl-prompt", "rrhf-reference", "trl-preference", "hh"]
InputFormatOpt = Annotated[
    InputFormat,
    typer.Option("--input-format", help="Input format; auto-detected from the first record's fields by default."),
]
_INPUT_FLAGS: dict[str, tuple[Any, Any]] = {  # the flags a command's `inputs: InputOptions` parameter becomes
    "input_format": (InputFormatOpt, "auto"),
    "prompt_field": (
        Annotated[
            str | None, typer.Option("--prompt-field", metavar="COLUMN", help="Input column holding the prompt.")
        ],
        None,
    ),
    "input_fields": (
        Annotated[
            list[str] | None,
            typer.Option(
                "--field",
                metavar="FIELD=COLUMN",
                help="Read FIELD (prompt, chosen, rejected, responses, ...) from another input column; repeatable.",
            ),
        ],
        None,
    ),
    "input_limit": (
        Annotated[int | None, typer.Option("--limit", min=1, metavar="N", help="Read only the first N records.")],
        None,
    ),
}
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of tables.")]

GENERAL = "General"
_debug = {"on": False}


def debug_enabled() -> bool:
    """Whether the current command asked for tracebacks instead of one-line errors."""
    return _debug["on"]


def command(model: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared flags (-q, -v, --debug, and --config when it has a model) plus one flag per
    model field; the wrapped function receives `config`, resolved from the file then the flags."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in ("config", "inputs")]
        reads = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, (annotation, default) in _INPUT_FLAGS.items()
        ] if "inputs" in signature.parameters else []
        fields = _field_params(model) if model else []
        general = _general_params(with_config=model is not None)

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            _debug["on"] = bool(kwargs.pop("debug"))
            setup_logging(verbose=kwargs.pop("verbose"), quiet=kwargs.pop("quiet"))
            if reads:
                kwargs["inputs"] = _input_options(**{p.name: kwargs.pop(p.name) for p in reads})
            if model is None:
                return fn(**kwargs)
            config_file = kwargs.pop("config_file")
            flags = {p.name: kwargs.pop(p.name) for p in fields}
            flags = {name: value for name, value in flags.items() if value is not None}
            file_values = load_config_file(config_file) if config_file else {}
            source = str(config_file) if config_file else "config"
            return fn(**kwargs, config=resolve_config(model, file_values, flags, source=source))

        wrapper.__signature__ = signature.replace(parameters=[*own, *reads, *fields, *general])  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _input_options(
    input_format: str, prompt_field: str | None, input_fields: list[str] | None, input_limit: int | None
) -> InputOptions:
    try:
        fields = parse_field_map(input_fields or [], prompt_field)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return InputOptions(format=input_format, fields=fields, limit=input_limit)


def _general_params(with_config: bool) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = []
    if with_config:
        params.append(
            inspect.Parameter(
                "config_file",
                kw,
                default=None,
                annotation=Annotated[
                    Path | None,
                    typer.Option(
                        "--config",
                        help="YAML or TOML file whose keys mirror the flags; flags win.",
                        rich_help_panel=GENERAL,
                    ),
                ],
            )
        )
    params += [
        inspect.Parameter(
            "quiet",
            kw,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option("-q", "--quiet", help="Only warnings and errors; no progress.", rich_help_panel=GENERAL),
            ],
        ),
        inspect.Parameter(
            "verbose",
            kw,
            default=0,
            annotation=Annotated[
                int,
                typer.Option("-v", "--verbose", count=True, help="More detail in the logs.", rich_help_panel=GENERAL),
            ],
        ),
        inspect.Parameter(
            "debug",
            kw,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option("--debug", help="Show tracebacks instead of one-line errors.", rich_help_panel=GENERAL),
            ],
        ),
    ]
    return params


def _own_fields_first(model: type[BaseModel]) -> list[str]:
    # Settings groups a config inherits (API, vLLM) come after the stage's own settings in --help.
    inherited = {name for base in model.__mro__[1:] if issubclass(base, BaseModel) for name in base.model_fields}
    return sorted(model.model_fields, key=lambda name: name in inherited)


def _field_params(model: type[BaseModel]) -> list[inspect.Parameter]:
    params = []
    for name in _own_fields_first(model):
        field = model.model_fields[name]
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli") is False:
            continue
        py_type = _cli_type(field.annotation)
        if py_type is None:
            continue  # nested settings are for the config file only
        flag = flag_name(name)
        # `flags` replace the derived flag: `-k`, not `-k, --k`; `--as`, not `--as-name, --as`.
        decls = list(extra.get("flags", [])) or ([f"{flag}/--no-{flag[2:]}"] if py_type is bool else [flag])
        decls += list(extra.get("aliases", []))  # extra spellings beside the flag
        default = field.default if field.default is not PydanticUndefined else None
        if field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        # A config file can supply any setting, so no flag is required on its own.
        shown = "required unless in --config" if field.is_required() else _show(default)
        option = typer.Option(
            *decls,
            help=f"{field.description or ''} [{shown}]".strip(),
            show_default=False,
            metavar=extra.get("metavar") or _list_metavar(py_type),
        )
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[py_type | None, option]
            )
        )
    return params


def _cli_type(annotation: Any) -> Any:
    """The flag type of a field, or None for fields that only a config file can set."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _cli_type(args[0]) if len(args) == 1 else None
    if origin is Literal:
        return annotation
    if origin is list:
        return annotation if get_args(annotation)[0] in (str, int, float) else None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    return annotation if annotation in (str, int, float, bool, Path) else None


def _list_metavar(py_type: Any) -> str | None:
    # Typer would show `<list[str]>`; a repeatable flag takes one value each time.
    if get_origin(py_type) is list:
        return {str: "TEXT", int: "INT", float: "FLOAT"}.get(get_args(py_type)[0])
    return None


def _show(default: Any) -> str:
    if default is None or default == []:
        return "default: none"
    if isinstance(default, enum.Enum):
        default = default.value
    if isinstance(default, bool):
        return "default: yes" if default else "default: no"
    return f"default: {default}"
