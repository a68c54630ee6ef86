"""Watching an engine's processes during a call, so a call whose engine process dies ends instead of waiting.

vLLM's synchronous client waits on its output queue without a timeout; when its engine-core process is killed
(the OOM killer, a crash in native code, kill -9) its monitor thread marks the engine dead but nothing wakes the
waiting call, which then hangs forever. `ProcessWatch.call` therefore runs the call on a worker thread and waits
in the caller's thread for whichever comes first: the call's end, or the end of a watched process (the sentinel,
multiprocessing's public handle that becomes ready when a process ends). No signal is involved, so this works
whatever the signal dispositions are (a background job ignores SIGINT), and Ctrl-C still reaches the waiting
thread as it always does.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing import connection
from multiprocessing.process import BaseProcess
from typing import TypeVar

import psutil

T = TypeVar("T")


class ProcessEnded(Exception):
    """A watched process ended while a call waited on it; the message says how (`describe_end`)."""


class ProcessWatch:
    """Runs calls that depend on `processes`; the first of them to end mid-call ends the call (ProcessEnded), and
    `ended` then describes it."""

    def __init__(self, processes: Sequence[BaseProcess]) -> None:
        self.processes = list(processes)
        self.ended: str | None = None
        self.signalled = False  # whether a signal ended it (kill -9, the OOM killer, a crash in native code)
        self._left: threading.Thread | None = None  # a call's thread the caller stopped waiting for

    @property
    def busy(self) -> bool:
        """Whether a call the caller stopped waiting for (Ctrl-C, a process that ended) is still running."""
        return self._left is not None and self._left.is_alive()

    def start(self, work: Callable[[], T]) -> T:
        """`work()` that starts the processes to watch (an engine's start), on a worker thread as `call` runs
        calls, and watches them from then on. Ctrl-C or SIGTERM ends the wait even where the work blocks in native
        code that keeps the signal from it (vLLM's start waits in one zmq poll for up to ten minutes), and then
        kills the processes the work started before it goes on."""
        before = set(multiprocessing.active_children())
        try:
            value = self._on_thread(work)
        except BaseException:
            kill_processes([p for p in multiprocessing.active_children() if p not in before])
            raise
        self.processes = [p for p in multiprocessing.active_children() if p not in before]
        return value

    def call(self, work: Callable[[], T]) -> T:
        """`work()`, run on a worker thread while this thread waits for it or for a watched process to end; its
        result or its exception, or ProcessEnded when a process ended first."""
        if not self.processes:
            return work()
        return self._on_thread(work)

    def _on_thread(self, work: Callable[[], T]) -> T:
        done_read, done_write = os.pipe()
        outcome: list[tuple[bool, object]] = []

        def run() -> None:
            try:
                outcome.append((True, work()))
            except BaseException as err:  # handed to the waiting thread, which raises it there
                outcome.append((False, err))
            finally:
                # The waiting thread may have left and closed its end: the write then fails, harmlessly.
                with contextlib.suppress(OSError):
                    os.write(done_write, b"x")
                os.close(done_write)

        thread = threading.Thread(target=run, daemon=True, name="rrhf-engine-call")
        thread.start()
        try:
            ready = connection.wait([done_read, *(p.sentinel for p in self.processes)])
        except BaseException:  # Ctrl-C or SIGTERM while waiting: the call is left to the engine's shutdown
            self._left = thread
            raise
        finally:
            os.close(done_read)
        if done_read not in ready:
            self._left = thread
            self._record(next(p for p in self.processes if p.sentinel in ready))
            raise ProcessEnded(self.ended or "")
        thread.join()
        finished, value = outcome[0]
        if finished:
            return value  # type: ignore[return-value]
        raise value  # type: ignore[misc]

    def check(self, wait: float = 1.0) -> None:
        """Record how a process ended when the engine reported its death another way first (vLLM's own monitor
        can fail the call before the watch sees the process end); waits up to `wait` seconds for the exit status."""
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


def kill_processes(processes: Sequence[BaseProcess]) -> None:
    """SIGKILL to each process and to every process under it (an engine core's own workers), and wait for them.
    Not SIGTERM first: a process still starting has nothing to keep, vLLM's engine defers SIGTERM until it has
    started, and one whose worker ended first logs a failed start with its traceback."""
    roots = []
    for process in processes:
        with contextlib.suppress(psutil.Error, ValueError):  # ended meanwhile, or never started
            roots.append(psutil.Process(process.pid))
    _send(roots, "suspend")  # stopped, a process starts no other while the tree is taken
    tree = list(roots)
    for root in roots:
        with contextlib.suppress(psutil.Error):
            tree += root.children(recursive=True)
    _send(tree, "kill")
    for process in processes:
        process.join(timeout=10)
    psutil.wait_procs([p for p in tree if p not in roots], timeout=10)


def _send(processes: Sequence[psutil.Process], how: str) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            getattr(process, how)()


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
