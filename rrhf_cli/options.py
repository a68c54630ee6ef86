"""Shared option types and the decorator that turns a stage's config model into command-line flags."""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from stages.contract.errors import UsageError
from stages.contract.formats import InputOptions, parse_field_map
from stages.runtime.config import (
    Flag,
    cli_of,
    deprecation,
    flag_type,
    plan_flags,
)
from stages.runtime.console import log, setup_logging
from stages.runtime.resolve import load_config_file, resolve_config

InputArg = Annotated[
    str, typer.Argument(help="Input: .jsonl, .json, .csv, .parquet, or hf:NAME[:CONFIG][:SPLIT].", metavar="INPUT")
]
OutputOpt = Annotated[
    Path, typer.Option("-o", "--output", help="Artifact to write (JSONL); a FILE.meta.json sidecar goes beside it.")
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Start over where an interrupted run of other inputs, settings or model files left a journal (a "
        "journal of this same run is continued: it gives the same file).",
    ),
]
CheckpointForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Start over where OUTDIR holds checkpoints of a run with other inputs, settings or model files "
        "(checkpoints of this same run are resumed, as --resume would).",
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
DEBUG = "rrhf.debug"
"""The key of `ctx.meta` (shared by a command's context and its group's) saying whether --debug was given."""
_CONTEXT = "rrhf_context"  # the parameter through which Typer hands the wrapper its context


def debug_enabled(ctx: typer.Context) -> bool:
    """Whether the command run in `ctx` asked for tracebacks instead of one-line errors."""
    return bool(ctx.meta.get(DEBUG))


def command(model: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared flags (-q, -v, --debug, and --config when it has a model) plus the model's flags
    (`plan_flags`: one per setting, a section's settings included); the wrapped function receives `config`,
    resolved from the file then the flags. A model no flags can express fails here, when the command is defined."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in ("config", "inputs")]
        reads = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, (annotation, default) in _INPUT_FLAGS.items()
        ] if "inputs" in signature.parameters else []
        plan = plan_flags(model) if model else []
        fields = [param for flag in plan for param in _flag_params(flag)]
        general = _general_params(with_config=model is not None)

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            kwargs.pop(_CONTEXT).meta[DEBUG] = bool(kwargs.pop("debug"))
            setup_logging(verbose=kwargs.pop("verbose"), quiet=kwargs.pop("quiet"))
            if reads:
                kwargs["inputs"] = _input_options(**{p.name: kwargs.pop(p.name) for p in reads})
            if model is None:
                return fn(**kwargs)
            config_file = kwargs.pop("config_file")
            flags = _flag_values(plan, kwargs)
            file_values = load_config_file(config_file) if config_file else {}
            source = str(config_file) if config_file else "config"
            config = resolve_config(model, file_values, flags, source=source, config_file=config_file)
            return fn(**kwargs, config=config)

        context = inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        wrapper.__signature__ = signature.replace(parameters=[*own, *reads, *fields, *general, context])  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _flag_values(plan: list[Flag], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The flags given, nested as the config is (`{"score": {"model": ...}}`); a former spelling warns once."""
    values: dict[str, Any] = {}
    for flag in plan:
        value = kwargs.pop(flag.dest)
        for index, former in enumerate(flag.former):
            old = kwargs.pop(_former_dest(flag, index))
            if old is not None:
                log.warning(deprecation(former, flag.label))
                value = old if value is None else value
        if value is None:
            continue
        holder = values
        for part in flag.path[:-1]:
            holder = holder.setdefault(part, {})
        holder[flag.name] = value
    return values


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


def _former_dest(flag: Flag, index: int) -> str:
    return f"{flag.dest}__former{index}"


def _flag_params(flag: Flag) -> list[inspect.Parameter]:
    """The flag's parameter, and a hidden one for each of its former spellings."""
    field, meta = flag.field, cli_of(flag.field)
    py_type = flag_type(field.annotation)
    choices = get_args(py_type) if get_origin(py_type) is Literal else ()
    if choices and meta.former_values:  # a former value still parses (then warns): the config checks the choice
        py_type = str
    default = field.default if field.default is not PydanticUndefined else None
    if field.default_factory is not None:
        default = field.default_factory()  # type: ignore[call-arg]
    # A config file can supply any setting, so no flag is required on its own.
    shown = "required unless in --config" if field.is_required() else _show(default)
    if flag.former:
        shown += f"; formerly {', '.join(flag.former)}"
    metavar = meta.metavar or _list_metavar(py_type) or ("|".join(choices) if choices and py_type is str else None)
    option = typer.Option(
        *flag.decls, help=f"{field.description or ''} [{shown}]".strip(), show_default=False, metavar=metavar
    )
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(flag.dest, kw, default=None, annotation=Annotated[py_type | None, option])]
    for index, former in enumerate(flag.former):
        decl = f"{former}/--no-{former[2:]}" if py_type is bool else former
        hidden = typer.Option(decl, hidden=True, metavar=metavar)
        params.append(inspect.Parameter(_former_dest(flag, index), kw, default=None,
                                        annotation=Annotated[py_type | None, hidden]))
    return params


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
