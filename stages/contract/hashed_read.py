"""Files read once for a pass: hashed as their bytes are read, and refused at the end of the pass if they changed
meanwhile, so a hash names the very bytes a pass read."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

from stages.contract.artifacts import file_sha256
from stages.contract.errors import BadInput

READ_BLOCK = 1 << 20
Stamp = tuple[int, int, int, int]


def _stamp(info: os.stat_result) -> Stamp:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def _check_unchanged(path: Path, stamp: Stamp) -> None:
    """BadInput when the file at `path` is no longer the one opened (replaced, truncated, appended to, rewritten)."""
    try:
        now = _stamp(os.stat(path))
    except OSError:
        now = None
    if now != stamp:
        raise BadInput(str(path), "changed while it was read (another process wrote, replaced or removed it); "
                                  "run again once nothing writes to it")


class _Hashing(io.RawIOBase):
    """A file's raw reads, each hashed as it passes."""

    def __init__(self, raw: io.FileIO, digest: Any) -> None:
        super().__init__()
        self.raw, self.digest = raw, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class HashedRead:
    """A file open for one pass: every byte read is hashed, and its identity at opening is kept to tell a change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        raw = path.open("rb", buffering=0)
        self.stamp = _stamp(os.fstat(raw.fileno()))
        self.binary = io.BufferedReader(_Hashing(raw, self.digest), READ_BLOCK)
        self._text: io.TextIOWrapper | None = None

    def __enter__(self) -> HashedRead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.binary.close()

    def text(self) -> io.TextIOWrapper:
        """The bytes as UTF-8 text (a BOM dropped), lines as written: for the csv module."""
        # Kept here: a wrapper let go of closes the file under it, which `finish` still reads.
        self._text = io.TextIOWrapper(self.binary, encoding="utf-8-sig", newline="")
        return self._text

    def finish(self) -> str:
        """The hash of the whole file (the rest read now), once it proved unchanged since it was opened."""
        while self.binary.read(READ_BLOCK):
            pass
        _check_unchanged(self.path, self.stamp)
        return self.digest.hexdigest()


class WholeFile:
    """A file read by a library that opens it itself (Parquet): hashed after its rows, checked unchanged since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp = _stamp(os.stat(path))

    def finish(self) -> str:
        digest = file_sha256(self.path)
        _check_unchanged(self.path, self.stamp)
        return digest
