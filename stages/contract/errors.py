"""The few exceptions the CLI boundary turns into one line on stderr and an exit status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class RrhfError(Exception):
    """A failure the user can act on; exit status 1 (a runtime failure)."""

    exit_code = 1


class RunInterrupted(RrhfError):
    """A failure that ends a run part-way (an engine that died, a signal): what finished is kept for a rerun."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so a killed run ends as an interrupted one does."""


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: end the run as Ctrl-C would, with its journal kept."""
    raise Terminated()


def interrupted(err: KeyboardInterrupt, kept: str = "") -> RunInterrupted:
    """Ctrl-C (exit 130) or SIGTERM (143) as a one-line failure: `interrupted (SIGTERM); KEPT`."""
    name, status = ("SIGTERM", 143) if isinstance(err, Terminated) else ("SIGINT", 130)
    return RunInterrupted(f"interrupted ({name})" + (f"; {kept}" if kept else ""), status)


class UsageError(RrhfError):
    """Bad options or configuration; exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class Location:
    """Where in an input a record came from: a file plus a line (text formats) or a row (tables, datasets)."""

    source: str
    index: int | None = None
    unit: str = "line"

    def __str__(self) -> str:
        if self.index is None:
            return self.source
        if self.unit == "line":
            return f"{self.source}:{self.index}"
        return f"{self.source}: {self.unit} {self.index}"


class BadInput(RrhfError):
    """An input record or file is malformed; exit status 2, message names the file and line."""

    exit_code = 2

    def __init__(self, where: Location | str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def exit_status(err: BaseException) -> int:
    """The exit status a run ends with on `err`: an RrhfError's own, else 1 (an OS error such as a full disk)."""
    return err.exit_code if isinstance(err, RrhfError) else 1


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first line (at most 300 characters), or its type where it has none:
    what a one-line error report quotes from a library's exception."""
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def os_error_message(err: OSError) -> str:
    """An OS error as `FILE: problem` (the file it names, both of a rename), or the problem alone where it names
    none.

    >>> os_error_message(FileNotFoundError(2, "No such file or directory", "in.jsonl"))
    'in.jsonl: No such file or directory'
    >>> os_error_message(OSError(18, "Invalid cross-device link", "a", None, "b"))
    'a -> b: Invalid cross-device link'
    >>> os_error_message(OSError(27, "File too large"))
    'File too large'
    """
    problem = err.strerror or first_line(err)
    if err.filename is None:
        return problem
    names = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else str(err.filename)
    return f"{names}: {problem}"


@contextmanager
def naming(path: object) -> Iterator[None]:
    """Give an OS error raised inside (a write's full disk, `ulimit -f`'s "File too large") the file it was about,
    where the system call named none; the error keeps its kind (OSError picks it by errno)."""
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror or first_line(err), str(path)) from err
