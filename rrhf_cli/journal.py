"""Per-batch journal (`FILE.partial`) so a killed stage resumes, recomputing at most one batch."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rrhf_cli.artifacts import dumps
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


@dataclass
class Failure:
    """What a stage could not do for one record (or one of its responses): a row of OUTPUT.failed.jsonl."""

    id: str
    error: str
    response: int | None = None  # the response's index, where the failure is one response's
    raw: str | None = None  # what an outside model answered, where that is the problem


@dataclass
class BatchResult:
    """What `work` made of a batch: records to journal, failures, and failed records as far as they got (what
    `--allow-failures` writes in their place; a stage may have none)."""

    finished: list[Record]
    failures: list[Failure] = field(default_factory=list)
    unfinished: list[Record] = field(default_factory=list)


@dataclass
class Outcome:
    """Every record journaled so far by id, the failures of this run and the unfinished records by id."""

    done: dict[str, Record]
    failures: list[Failure]
    unfinished: dict[str, Record]

    def in_order(self, records: Sequence[Record]) -> list[Record]:
        """The finished (else unfinished) version of each record, in the order given; records that failed with
        nothing to show are left out."""
        written = self.unfinished | self.done  # a finished version wins
        return [written[r.id] for r in records if r.id in written]


Work = Callable[[list[Record], list[str]], BatchResult]


def run_batches(
    ordered: Sequence[Record],
    batch_size: int,
    work: Work,
    journal: Journal,
    advance: Callable[[int], None] = lambda n: None,
    whole_batches: bool = False,
) -> Outcome:
    """Apply `work` to the records not yet journaled, batch by batch, journaling each batch's finished records.

    Failed records are left out of the journal, so running the same command again redoes exactly those.
    Batches are cut from the full order and `work` also gets all the batch's ids, so a stage can seed a batch
    from them and a resumed run draws what an uninterrupted one would; with `whole_batches` (one RNG per
    batch) a batch cut short by a kill is redone whole.
    """
    done = journal.load()
    advance(sum(1 for r in ordered if r.id in done))
    failures: list[Failure] = []
    unfinished: dict[str, Record] = {}
    for start in range(0, len(ordered), batch_size):
        batch = list(ordered[start : start + batch_size])
        missing = [r for r in batch if r.id not in done]
        if not missing:
            continue
        result = work(batch if whole_batches else missing, [r.id for r in batch])
        finished = [r for r in result.finished if r.id not in done]
        journal.append(finished)
        done.update((r.id, r) for r in finished)
        failures += [f for f in result.failures if f.id not in done]
        unfinished.update((r.id, r) for r in result.unfinished if r.id not in done)
        advance(len(missing))
    failed = {f.id for f in failures}
    lost = [r.id for r in ordered if r.id not in done and r.id not in failed]
    if lost:
        raise RuntimeError(f"batch work returned no record for id '{lost[0]}'")
    return Outcome(done, failures, unfinished)
