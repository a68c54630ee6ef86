"""Writing artifacts atomically, and hashing files."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from stages.contract.schema import Record


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


WRITE_BUFFER = 1 << 20


@contextmanager
def atomic_open(path: Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Write to a temp file beside `path` (UTF-8 text, or bytes with `binary`), then fsync and rename; on error
    the old file is untouched. A symlinked `path` is written through (its target is replaced, the link kept),
    and the file gets the umask's mode."""
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # A large buffer: artifacts run to GBs, and an 8 KiB one is a system call every few records.
        opened = (os.fdopen(fd, "wb", buffering=WRITE_BUFFER) if binary
                  else os.fdopen(fd, "w", buffering=WRITE_BUFFER, encoding="utf-8", newline="\n"))
        with opened as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an artifact is an ordinary file
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a write error (a full disk) names no file by itself
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _umask() -> int:
    # Read without changing it: os.umask can only be read by setting it.
    for line in Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []:
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


Row = Record | dict[str, Any] | str
"""What an artifact is written from: a record, a row of another artifact kind, or a line already in JSON."""


def write_records(path: Path, records: Iterable[Row]) -> int:
    """Write records, rows or JSON lines as JSONL atomically, streaming; returns the count."""
    count = 0
    with atomic_open(path, binary=True) as handle:
        for record in records:
            handle.write(line_bytes(record))
            count += 1
    return count


def line_bytes(row: Row) -> bytes:
    """One artifact line as UTF-8, newline included."""
    if isinstance(row, str):
        return (row if row.endswith("\n") else row + "\n").encode("utf-8")
    return (dumps(row.to_json_dict() if isinstance(row, Record) else row) + "\n").encode("utf-8")


def json_line(row: Row) -> str:
    """One artifact line as text, newline included."""
    return line_bytes(row).decode("utf-8")


def write_json(path: Path, value: Any) -> None:
    """Write one JSON document atomically, indented for people to read."""
    with atomic_open(path) as handle:
        handle.write(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def dumps(value: Any) -> str:
    """One compact JSONL line (UTF-8 text, not escaped). Every number reaching a writer is finite: the readers
    refuse NaN and infinities and the contract's scores are checked, since orjson would write them as null."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # an integer beyond 64 bits, which orjson cannot write and the standard library can
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def fsync_file(path: Path) -> None:
    """Make a written file's contents durable before a rename publishes it (a power cut could otherwise publish
    an empty file); a write the disk refused late surfaces here as an OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename into `folder` durable (a no-op where the filesystem does not let a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
