"""Logging and progress on stderr, so stdout stays clean for pipes and `--json`."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from stages.runtime.launch import current_launch

log = logging.getLogger("rrhf")
_state = {"quiet": False}

PIPE_EXIT = 128 + 13
"""The status of a command whose reader went away (`rrhf inspect f | head -1`): what SIGPIPE gives in a shell."""


class ClosedOutput(io.TextIOBase):
    """Standard output started closed (`>&-`): writing to it is an error naming it, so a command whose result is
    its output fails instead of ending well with nothing written; commands that write files are unaffected."""

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            raise OSError(errno.EBADF, "closed, so the result had nowhere to go", "standard output")
        return 0


def guard_streams() -> None:
    """Make the standard streams safe to use whatever state they start in: a closed descriptor 0-2 is held on
    /dev/null (so no file the run opens takes its number and receives what was meant for the terminal), a closed
    stderr discards messages, a closed stdout fails on the first write, and a stream whose encoding cannot spell
    a character (LC_ALL=C, a Latin-1 locale) writes it escaped instead of failing."""
    closed = [fd for fd in (0, 1, 2) if not _open(fd)]
    for fd in closed:
        held = os.open(os.devnull, os.O_RDWR)
        if held != fd:
            os.dup2(held, fd)
            os.close(held)
    if 1 in closed or sys.stdout is None:
        sys.stdout = ClosedOutput()
    if 2 in closed or sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (a broken pipe there is the reader's choice, not a
    failure); False where stdout is anything else."""
    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno() if sys.__stdout__ else 1, select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError):
        return False


def drop_stdout() -> None:
    """Point stdout at /dev/null, so what is still buffered for a reader that left is dropped without an error
    when the process exits."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def print_json(value: Any) -> None:
    """A command's `--json` result on stdout, indented, for pipes and `jq`."""
    print(json.dumps(value, indent=2))


def output_console() -> Any:
    """A rich Console on stdout whose broken pipe ends the command as every other write to stdout does (rich's
    own default exits 1 by itself)."""
    from rich.console import Console

    class _OutputConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    return _OutputConsole()


def flush_stdout() -> bool:
    """Flush stdout at the end of a command; False (and the rest dropped) where its reader has gone."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        drop_stdout()
        return False
    except OSError:
        return True  # a closed stdout already failed its command; nothing more to say at exit
    return True


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Route the `rrhf` logger to stderr: rich on a terminal, plain `rrhf: message` lines otherwise. In a
    distributed launch only rank 0 reports progress; the other ranks say only warnings and errors, named."""
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    rank = current_launch().rank
    if rank:
        level = max(level, logging.WARNING)
    tag = f"[rank {rank}] " if rank else ""
    log.handlers.clear()
    log.propagate = False
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
        handler.setFormatter(logging.Formatter(tag + "%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("rrhf: " + tag + "%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; shows a rich bar with rate and ETA on a terminal, periodic lines otherwise."""
    if _state["quiet"] or total <= 0:
        yield lambda n: None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[progress.data.speed]{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(description, total=total, rate="")
            started = time.monotonic()

            def advance(n: int) -> None:
                bar.advance(task, n)
                done = bar.tasks[0].completed
                bar.update(task, rate=f"{done / max(time.monotonic() - started, 1e-9):.1f}/s")

            yield advance
        return
    yield _PlainProgress(total, description).advance


class _PlainProgress:
    """A line every 10% or 30 seconds, whichever comes first: readable in CI logs and files."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.description = total, description
        self.done = 0
        self.started = self.last = time.monotonic()
        self.next_fraction = 0.1

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.done < self.total and self.done / self.total < self.next_fraction and now - self.last < 30:
            return
        self.last = now
        self.next_fraction = self.done / self.total + 0.1
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info(
            "%s: %d/%d (%.0f%%) %.1f/s, %s left",
            self.description,
            self.done,
            self.total,
            100 * self.done / self.total,
            rate,
            _duration(eta),
        )


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def quiet_libraries() -> None:
    """Silence transformers' and the hub's own progress bars and warnings unless -v was given."""
    if log.level <= logging.DEBUG:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
