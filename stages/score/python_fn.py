"""The python scorer: a user function `(prompt, response) -> float` for rule-based or verifiable rewards."""

from __future__ import annotations

import decimal
import importlib
import importlib.util
import math
import numbers
import queue
import reprlib
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stages.contract.errors import Location, RrhfError, UsageError
from stages.contract.schema import Record
from stages.lm.prompts import as_plain
from stages.runtime.runs import Failure
from stages.score.config import ScoreConfig


def load_function(spec: str) -> Callable[[Any, str], Any]:
    """`package.module:function` or `path/to/file.py:function`, imported."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise UsageError(f"--fn {spec}: expected module:function or path/to/file.py:function")
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"--fn {spec}: no such file {path}")
            module_spec = importlib.util.spec_from_file_location(f"rrhf_user_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[module_spec.name] = module  # type: ignore[union-attr]
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
    except UsageError:
        raise
    except Exception as err:  # the user's module may fail to import in any way
        raise UsageError(f"--fn {spec}: cannot import {target} ({type(err).__name__}: {err})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UsageError(f"--fn {spec}: {target} has no function '{name}'")
    return function


class PythonScorer:
    """Calls the function once per response; the prompt is passed as in the record (string or messages)."""

    def __init__(self, config: ScoreConfig) -> None:
        self.spec = config.fn or ""
        self.function = load_function(self.spec)
        # Only a --timeout given (flag or config file) bounds a call: the 120 s default is meant for API requests,
        # and a verifier that runs tests may take longer on purpose.
        self.timeout = config.timeout if "timeout" in config.model_fields_set else None
        self._worker: _Worker | None = None

    def close(self) -> None:
        """Let the worker thread end; the function holds what it holds for the process."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        out: list[list[float | Failure]] = []
        calls: list[tuple[Any, str]] = []
        for record in records:
            prompt = as_plain(record.prompt)
            calls += [(prompt, response.text) for response in record.responses]
        # Without a --timeout the batch's calls go to the worker in one hand-over: a hand-over per call would
        # cost more than a cheap function.
        results = iter(self._call_all(calls) if self.timeout is None else [self._call(*call) for call in calls])
        for record, where in zip(records, locations, strict=True):
            values: list[float | Failure] = []
            for index, _ in enumerate(record.responses):
                called = next(results)
                if called is None:
                    values.append(Failure(error=f"--fn {self.spec} took longer than --timeout {self.timeout:g} s"))
                    continue
                returned, value = called
                if not returned:  # the user's code: report which record broke it
                    raised = f"{type(value).__name__}: {value}" if str(value) else type(value).__name__
                    raise RrhfError(f"{where}: --fn {self.spec} raised {raised} on responses[{index}]")
                number = as_score(value)
                if number is None:
                    raise RrhfError(
                        f"{where}: --fn {self.spec} returned {reprlib.repr(value)} for responses[{index}]; "
                        "expected a finite number"
                    )
                values.append(number)
            out.append(values)
        return out

    def _call_all(self, calls: list[tuple[Any, str]]) -> list[tuple[bool, Any]]:
        """(True, value) or (False, exception) of each call, made in turn on the worker thread."""
        if self._worker is None:
            self._worker = _Worker(self.function)
        return self._worker.call_all(calls)

    def _call(self, prompt: Any, text: str) -> tuple[bool, Any] | None:
        """(True, value) or (False, exception) of one call; None where it outlasted --timeout."""
        # Every call runs on a worker thread (a few microseconds each): signals reach only the main thread, so a
        # KeyboardInterrupt caught there is the user's code's own, while Ctrl-C and SIGTERM still end the run as
        # an interrupted one. The cost: code of the function's own that sets signal handlers cannot run.
        if self._worker is None:
            self._worker = _Worker(self.function)
        called = self._worker.call(prompt, text, self.timeout)
        if called is None:
            # A thread cannot be killed: the late call runs on, abandoned, and the next call gets a new thread.
            self._worker.stop()
            self._worker = None
        return called


def _invoke(function: Callable[[Any, str], Any], prompt: Any, text: str) -> tuple[bool, Any]:
    try:
        return True, function(prompt, text)
    # sys.exit() or a KeyboardInterrupt raised by the user's code is that call's failure, not the process's exit.
    except (Exception, SystemExit, KeyboardInterrupt) as err:
        return False, err


class _Worker:
    """A thread that makes the calls one at a time. A daemon, unlike a ThreadPoolExecutor's workers, which the
    interpreter joins at exit: a call that never returns must not keep rrhf from exiting."""

    def __init__(self, function: Callable[[Any, str], Any]) -> None:
        self._inbox: queue.SimpleQueue[tuple[Any, str] | list[tuple[Any, str]] | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._serve, args=(function,), name="rrhf-python-fn", daemon=True).start()

    def _serve(self, function: Callable[[Any, str], Any]) -> None:
        while (item := self._inbox.get()) is not None:
            if isinstance(item, list):
                self._outbox.put([_invoke(function, *call) for call in item])
            else:
                self._outbox.put(_invoke(function, *item))

    def call(self, prompt: Any, text: str, timeout: float | None) -> tuple[bool, Any] | None:
        """What the call gave, or None where it has not returned within `timeout` seconds (None: no limit)."""
        self._inbox.put((prompt, text))
        try:
            return self._outbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def call_all(self, calls: list[tuple[Any, str]]) -> list[tuple[bool, Any]]:
        """What each call gave, the calls made one after another in one hand-over (no time limit)."""
        self._inbox.put(calls)
        return self._outbox.get()

    def stop(self) -> None:
        """End the thread once its current call (if any) returns."""
        self._inbox.put(None)


def as_score(value: Any) -> float | None:
    """A finite float from a real number: Python's, numpy's, or a 0-d array or tensor (through `.item()`); None
    for anything else (booleans, NaN, infinities, strings, lists)."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            value = value.item()
        except Exception:  # an object that only looks like a scalar
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real | decimal.Decimal):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):  # an int past float's range, a signalling Decimal NaN
        return None
    return number if math.isfinite(number) else None
