"""Records parked on disk and read back by position: random access to a stream without holding it."""

from __future__ import annotations

import tempfile
from array import array
from pathlib import Path

import orjson

from stages.contract.errors import Location, naming
from stages.contract.schema import Record


class RecordSpool:
    """Validated records in an unnamed temporary file (gone when closed, or when the process dies), each with
    where it came from; memory holds two integers per record."""

    def __init__(self, folder: Path) -> None:
        """`folder`: where the file lives; beside the output, so a large spool uses the output's disk."""
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        self._file = tempfile.TemporaryFile(dir=folder)
        self._offsets = array("q")
        self._lines = array("q")  # the record's line (or row) in its input; -1 where it has none
        self._sources: list[tuple[str, str]] = []  # (spec, unit) of each input seen, by number
        self._source_of = array("h")
        self._end = 0

    def append(self, record: Record, where: Location) -> int:
        """Park `record`; returns its position."""
        key = (where.source, where.unit)
        if not self._sources or self._sources[-1] != key:
            self._sources.append(key)
        line = orjson.dumps(record.to_json_dict()) + b"\n"
        with naming(f"a temporary file in {self._folder}"):
            self._file.seek(self._end)
            self._file.write(line)
        self._offsets.append(self._end)
        self._lines.append(-1 if where.index is None else where.index)
        self._source_of.append(len(self._sources) - 1)
        self._end += len(line)
        return len(self._offsets) - 1

    def __len__(self) -> int:
        return len(self._offsets)

    def get(self, position: int) -> tuple[Location, Record]:
        """The record parked at `position`, with its location."""
        self._file.seek(self._offsets[position])
        record = Record.model_validate_json(self._file.readline())
        source, unit = self._sources[self._source_of[position]]
        line = self._lines[position]
        return Location(source, None if line < 0 else line, unit), record

    def close(self) -> None:
        """Drop the file."""
        self._file.close()
