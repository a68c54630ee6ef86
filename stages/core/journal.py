"""The journal's file format (`FILE.partial`): a header naming the run's fingerprint, then finished records, one
batch appended at a time, so a killed stage resumes recomputing at most one batch."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.core.artifacts import dumps
from stages.core.errors import UsageError
from stages.core.meta import differences
from stages.core.schema import Record


def partial_path(output: Path) -> Path:
    """Where the journal of `output` lives."""
    return output.with_name(output.name + ".partial")


class Journal:
    """Finished records appended batch by batch, under a header naming the run's fingerprint.

    A rerun with the same fingerprint continues; a different one is refused unless `force`, so two
    configurations never mix in one output.
    """

    def __init__(self, output: Path, fingerprint: str, force: bool = False, identity: dict | None = None) -> None:
        """`identity`: what the fingerprint hashes (redacted), kept in the header to name what a refused run changed."""
        self.path = partial_path(output)
        self.fingerprint = fingerprint
        self.identity = identity
        self._done: dict[str, Record] | None = None
        if force:
            self.path.unlink(missing_ok=True)

    def load(self) -> dict[str, Record]:
        """Finished records by id, read once (later calls return the same dict); drops a line torn by a kill so
        appends start on a clean line."""
        if self._done is None:
            self._done = self._read()
        return self._done

    def _read(self) -> dict[str, Record]:
        if not self.path.exists():
            self._start()
            return {}
        done: dict[str, Record] = {}
        good_end = 0
        with self.path.open("rb") as handle:
            header = handle.readline()
            if not header.endswith(b"\n") or _header_field(header, "fingerprint") is None:
                # Killed before the header landed: nothing was journaled.
                self._start()
                return {}
            if _header_field(header, "fingerprint") != self.fingerprint:
                changed = differences(_header_field(header, "identity") or {}, self.identity or {})
                what = f" ({', '.join(changed)})" if changed else ""
                raise UsageError(
                    f"{self.path} was written by a run with other inputs, settings or model files{what}; "
                    "rerun with the same command to resume, or add --force to start over"
                )
            good_end = handle.tell()
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                try:
                    record = Record.model_validate_json(raw)
                except ValueError:
                    break
                done[record.id] = record
                good_end = handle.tell()
        with self.path.open("r+b") as handle:
            handle.truncate(good_end)
        return done

    def append(self, records: Sequence[Record]) -> None:
        """Add one finished batch durably."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(dumps(r.to_json_dict()) + "\n" for r in records)
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        """Drop the journal once the finished artifact is in place."""
        self.path.unlink(missing_ok=True)

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", encoding="utf-8") as handle:
            handle.write(self._header())
            handle.flush()
            os.fsync(handle.fileno())

    def _header(self) -> str:
        header = {"rrhf_journal": 1, "fingerprint": self.fingerprint}
        return dumps(header | ({"identity": self.identity} if self.identity else {})) + "\n"


def _header_field(line: bytes, name: str) -> Any:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header.get(name) if isinstance(header, dict) else None

