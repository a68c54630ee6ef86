"""Stages listed in `rrhf --help` whose implementation has not landed in this release yet."""

from __future__ import annotations

from collections.abc import Callable

import typer

from rrhf_cli.errors import RrhfError

_PLANNED = {
    "sample": "Sample k responses per prompt (transformers, vLLM, OpenAI-compatible API).",
    "score": "Score responses (reward model, LLM judge, log-prob, Python function).",
}


def _placeholder(stage: str, summary: str) -> Callable[..., None]:
    def run(args: list[str] = typer.Argument(None, hidden=True)) -> None:
        raise RrhfError(f"'rrhf {stage}' is not available in this release yet")

    run.__doc__ = f"{summary} (Not available in this release yet.)"
    return run


COMMANDS: dict[str, Callable[..., None]] = {name: _placeholder(name, text) for name, text in _PLANNED.items()}
