"""Running vLLM in-process, for every stage that uses it: importing it and starting an engine."""

from __future__ import annotations

from typing import Any

from rrhf_cli.errors import RrhfError, first_line

INSTALL = "pip install 'rrhf[vllm]' (Linux with a GPU)"


def import_vllm(needed_by: str) -> Any:
    """The `vllm` module, or a one-line error saying what needs it and how to install it."""
    try:
        import vllm
    except ImportError:
        raise RrhfError(f"{needed_by} needs vLLM, which is not installed: {INSTALL}") from None
    return vllm


def start_llm(vllm: Any, model: str, **engine: Any) -> Any:
    """`vllm.LLM(model, **engine)`, with the settings vLLM rejects reported in one line rather than a traceback."""
    try:
        return vllm.LLM(model=model, **engine)
    except ValueError as err:  # vLLM validates engine arguments with ValueError (pydantic's included)
        raise RrhfError(f"vLLM could not start {model}: {first_line(err)}") from None
