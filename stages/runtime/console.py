"""Logging and progress on stderr, so stdout stays clean for pipes and `--json`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from stages.runtime.launch import current_launch

log = logging.getLogger("rrhf")
_state = {"quiet": False}


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
