"""Watching an engine's processes during a call, so a call whose engine process dies ends instead of waiting.

vLLM's synchronous client waits on its output queue without a timeout; when its engine-core process is killed
(the OOM killer, a crash in native code, kill -9) its monitor thread marks the engine dead but nothing wakes the
waiting call, which then hangs forever. A `ProcessWatch` waits on the processes' sentinels (multiprocessing's
public handle that becomes ready when a process ends) and interrupts the main thread when one ends mid-call.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import connection
from multiprocessing.process import BaseProcess


class ProcessWatch:
    """While `watching()` is active, the first of `processes` to end interrupts the main thread (KeyboardInterrupt
    there); `ended` then describes it."""

    def __init__(self, processes: Sequence[BaseProcess]) -> None:
        self.processes = list(processes)
        self.ended: str | None = None
        self.signalled = False  # whether a signal ended it (kill -9, the OOM killer, a crash in native code)
        self._lock = threading.Lock()
        self._active = False

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch for the duration of the block (from the main thread; elsewhere the block runs unwatched)."""
        if not self.processes or threading.current_thread() is not threading.main_thread():
            yield
            return
        stop_read, stop_write = os.pipe()
        self._active = True
        thread = threading.Thread(target=self._wait, args=(stop_read,), daemon=True, name="rrhf-engine-watch")
        thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._active = False
            os.write(stop_write, b"x")
            thread.join()
            os.close(stop_read)
            os.close(stop_write)

    def _wait(self, stop: int) -> None:
        ready = connection.wait([p.sentinel for p in self.processes] + [stop])
        if stop in ready:
            return
        with self._lock:
            if not self._active:
                return
            self._record(next(p for p in self.processes if p.sentinel in ready))
            # A real SIGINT sent to the main thread: `_thread.interrupt_main` only sets a flag, which a thread
            # blocked on a lock never reads; the signal wakes it, and Python's handler raises KeyboardInterrupt.
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def check(self, wait: float = 1.0) -> None:
        """Record how a process ended when the engine reported its death another way first (vLLM's own monitor
        can fail the call before this watch interrupts it); waits up to `wait` seconds for the exit status."""
        if self.ended is not None:
            return
        ready = connection.wait([p.sentinel for p in self.processes], timeout=wait) if self.processes else []
        for process in self.processes:
            if process.sentinel in ready:
                self._record(process)
                return

    def _record(self, process: BaseProcess) -> None:
        code = exit_code(process)
        self.ended = describe_end(process.name, code)
        self.signalled = code is not None and code < 0


def exit_code(process: BaseProcess, wait: float = 1.0) -> int | None:
    """The exit status of a process that has ended. vLLM's monitor thread wakes on the same sentinel: when both
    reap the process at once, the loser's waitpid fails and reads None until the winner stores the status."""
    deadline = time.monotonic() + wait
    process.join(timeout=wait)
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.exitcode


def describe_end(name: str, exitcode: int | None) -> str:
    """How a process ended, in words: `EngineCore_DP0 was killed (SIGKILL)`, `... exited with status 1`."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"its process {name} was killed ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"its process {name} was killed (signal {-exitcode})"
    if exitcode is None:  # reaped by another waiter that kept the status
        return f"its process {name} ended"
    return f"its process {name} exited with status {exitcode}"
