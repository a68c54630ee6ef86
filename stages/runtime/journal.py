"""The journal's file format (`FILE.partial`): a header naming the run's fingerprint, then finished records, one
batch appended at a time, so a killed stage resumes recomputing at most one batch."""

from __future__ import annotations

import json
import os
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from stages.contract.artifacts import dumps
from stages.contract.errors import UsageError, naming
from stages.contract.id_index import IdIndex, id_hash
from stages.contract.meta import differences
from stages.contract.schema import Record
from stages.runtime.console import log

SYNC_SECONDS = 1.0


def partial_path(output: Path) -> Path:
    """Where the journal of `output` lives."""
    return output.with_name(output.name + ".partial")


class Journal:
    """Finished records appended batch by batch, under a header naming the run's fingerprint.

    A rerun with the same fingerprint continues; a different one is refused, or under `force` discarded, so two
    configurations never mix in one output. `force` keeps a journal of this same run: continuing it writes the
    file starting over would, so an interrupted `make` that passes --force loses no finished record. The records
    stay on disk: memory holds each one's id hash and where its line starts (16 bytes), and `lines` streams them
    back in any order. `id in journal` and `len(journal)` ask what is finished.
    """

    def __init__(self, output: Path, fingerprint: str, force: bool = False, identity: dict | None = None) -> None:
        """`identity`: what the fingerprint hashes (redacted), kept in the header to name what a refused run changed."""
        self.path = partial_path(output)
        self.fingerprint = fingerprint
        self.identity = identity
        self._hashes = array("q")
        self._offsets = array("q")
        self._earlier: IdIndex | None = None  # the lines a killed run left
        self._synced = time.monotonic()
        self._reader: BinaryIO | None = None
        changed = self.stale() if force else None
        if changed is not None:
            what = f" ({', '.join(changed)})" if changed else ""
            log.info("--force: %s was written by another run%s; starting over", self.path, what)
            self.path.unlink()

    def stale(self) -> list[str] | None:
        """What differs between the run that wrote the journal on disk and this one (an empty list when it cannot
        tell); None when there is no journal of another run."""
        try:
            with self.path.open("rb") as handle:
                header = handle.readline()
        except FileNotFoundError:
            return None
        if not header.endswith(b"\n") or _header_field(header, "fingerprint") in (None, self.fingerprint):
            return None  # no header yet: nothing was journaled
        return differences(_header_field(header, "identity") or {}, self.identity or {})

    def load(self) -> Journal:
        """Read what a killed run left, once (drops a line torn by a kill so appends start on a clean line)."""
        if self._earlier is None:
            self._read()
            self._earlier = IdIndex(self._hashes, self._offsets)  # sorted copies: later appends leave it as it is
        return self

    def __contains__(self, record_id: object) -> bool:
        """Whether a killed run finished this record (a record of this run is asked before it is done)."""
        earlier = self.load()._earlier
        return isinstance(record_id, str) and earlier is not None and self._line_of(earlier, record_id) is not None

    def __len__(self) -> int:
        return len(self.load()._offsets)

    def _read(self) -> None:
        if not self.path.exists():
            self._start()
            return
        with self.path.open("rb") as handle:
            header = handle.readline()
            if not header.endswith(b"\n") or _header_field(header, "fingerprint") is None:
                # Killed before the header landed: nothing was journaled.
                self._start()
                return
            if _header_field(header, "fingerprint") != self.fingerprint:
                changed = self.stale()
                what = f" ({', '.join(changed)})" if changed else ""
                raise UsageError(
                    f"{self.path} was written by a run with other inputs, settings or model files{what}; "
                    "rerun with the same command to resume, or add --force to start over"
                )
            good_end = handle.tell()
            for raw in handle:
                record_id = _line_id(raw)
                if record_id is None:
                    break
                self._hashes.append(id_hash(record_id))
                self._offsets.append(good_end)
                good_end += len(raw)
        with self.path.open("r+b") as handle:
            handle.truncate(good_end)

    def append(self, records: Sequence[Record]) -> None:
        """Add one finished batch: at once safe from a killed process (it is in the operating system's hands),
        and from a machine crash within SYNC_SECONDS (an fsync per small batch would cost more than the work)."""
        self.load()
        lines = [(r.id, (dumps(r.to_json_dict()) + "\n").encode("utf-8")) for r in records]
        with naming(self.path), self.path.open("ab") as handle:
            at = handle.seek(0, os.SEEK_END)
            handle.write(b"".join(line for _, line in lines))
            handle.flush()
            if time.monotonic() - self._synced >= SYNC_SECONDS:
                os.fsync(handle.fileno())
                self._synced = time.monotonic()
        for record_id, line in lines:
            self._hashes.append(id_hash(record_id))
            self._offsets.append(at)
            at += len(line)

    def lines(self, ids: Iterable[str]) -> Iterator[tuple[str, str | None]]:
        """Each of `ids` in the order given, with its journaled line (JSON and newline), or None if unfinished."""
        self.load()
        index = IdIndex(self._hashes, self._offsets)
        for record_id in ids:
            line = self._line_of(index, record_id)
            yield record_id, None if line is None else line.decode("utf-8")

    def _line_of(self, index: IdIndex, record_id: str) -> bytes | None:
        """The journaled line of `record_id`, read once: each candidate line is checked by the id it holds."""
        for offset in index.candidates(record_id):
            if self._reader is None or self._reader.closed:
                self._reader = self.path.open("rb")
            self._reader.seek(offset)
            line = self._reader.readline()
            if _line_id(line) == record_id:
                return line
        return None

    def remove(self) -> None:
        """Drop the journal once the finished artifact is in place."""
        if self._reader is not None:
            self._reader.close()
        self.path.unlink(missing_ok=True)

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with naming(self.path), self.path.open("w", encoding="utf-8") as handle:
            handle.write(self._header())
            handle.flush()
            os.fsync(handle.fileno())

    def _header(self) -> str:
        header = {"rrhf_journal": 1, "fingerprint": self.fingerprint}
        return dumps(header | ({"identity": self.identity} if self.identity else {})) + "\n"


def _line_id(raw: bytes) -> str | None:
    """The id of a whole journaled record line; None for a line a kill tore."""
    if not raw.endswith(b"\n"):
        return None
    try:
        value = orjson.loads(raw)
    except ValueError:
        return None
    record_id = value.get("id") if isinstance(value, dict) else None
    return record_id if isinstance(record_id, str) and isinstance(value.get("prompt"), str | list) else None


def _header_field(line: bytes, name: str) -> Any:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header.get(name) if isinstance(header, dict) else None

