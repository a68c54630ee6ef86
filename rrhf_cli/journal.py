"""Per-batch journal (`FILE.partial`) so a killed stage resumes, recomputing at most one batch."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from rrhf_cli.artifacts import atomic_open, dumps
from rrhf_cli.errors import UsageError
from rrhf_cli.schema import Record


def partial_path(output: Path) -> Path:
    """Where the journal of `output` lives."""
    return output.with_name(output.name + ".partial")


class Journal:
    """Finished records appended batch by batch, under a header naming the run's fingerprint.

    A rerun with the same fingerprint continues; a different one is refused unless `force`, so two
    configurations never mix in one output.
    """

    def __init__(self, output: Path, fingerprint: str, force: bool = False) -> None:
        self.path = partial_path(output)
        self.fingerprint = fingerprint
        if force:
            self.path.unlink(missing_ok=True)

    def load(self) -> dict[str, Record]:
        """Finished records by id; drops a line torn by a kill so appends start on a clean line."""
        if not self.path.exists():
            self._start()
            return {}
        done: dict[str, Record] = {}
        good_end = 0
        with self.path.open("rb") as handle:
            header = handle.readline()
            if not header.endswith(b"\n") or _header_fingerprint(header) is None:
                # Killed before the header landed: nothing was journaled.
                self._start()
                return {}
            if _header_fingerprint(header) != self.fingerprint:
                raise UsageError(
                    f"{self.path} was written by a run with other inputs or settings; "
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

    def rewrite(self, records: Sequence[Record]) -> None:
        """Replace the journal's records with `records` (atomically), so a rerun redoes the ones left out."""
        with atomic_open(self.path) as handle:
            handle.write(self._header())
            handle.writelines(dumps(r.to_json_dict()) + "\n" for r in records)

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
        return dumps({"rrhf_journal": 1, "fingerprint": self.fingerprint}) + "\n"


def _header_fingerprint(line: bytes) -> str | None:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header.get("fingerprint") if isinstance(header, dict) else None


def run_batches(
    records: Sequence[Record],
    batch_size: int,
    work: Callable[[list[Record]], list[Record]],
    journal: Journal,
    advance: Callable[[int], None] = lambda n: None,
) -> list[Record]:
    """Apply `work` to the records not yet journaled, batch by batch; return all results in input order."""
    done = journal.load()
    advance(sum(1 for r in records if r.id in done))
    todo = [r for r in records if r.id not in done]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        finished = work(batch)
        journal.append(finished)
        done.update((r.id, r) for r in finished)
        advance(len(batch))
    missing = [r.id for r in records if r.id not in done]
    if missing:
        raise RuntimeError(f"batch work returned no record for id '{missing[0]}'")
    return [done[r.id] for r in records]
