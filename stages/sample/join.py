"""Files joined by id, streaming: the first input is read in order and each later one alongside it. While a
later input lists the same ids in the same order (the usual case: outputs made from one prompts file) its
records are joined as they come; a record met out of order is parked on disk, indexed by id, until its id is
wanted. Memory holds the parked records' ids and positions, never the records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from stages.contract.errors import Location
from stages.contract.inputs import Row
from stages.contract.schema import Record
from stages.sample.sources import join_record
from stages.sample.spool import RecordSpool


class _Later:
    """One later input, read only as far as the ids asked of it require."""

    def __init__(self, source: Iterable[Row], spool: RecordSpool) -> None:
        self.rows = iter(source)
        self.spool = spool
        self.parked: dict[str, int] = {}  # id -> spool position, in the input's order

    def take(self, record_id: str) -> tuple[Record, Location] | None:
        """The record of `record_id`, once; None when the input has none."""
        if record_id in self.parked:
            where, record = self.spool.get(self.parked.pop(record_id))
            return record, where
        for where, record in self.rows:
            if record.id == record_id:
                return record, where
            self.parked[record.id] = self.spool.append(record, where)
        return None

    def rest(self) -> Iterator[Record]:
        """Every record not taken yet, in the input's order."""
        for where, record in self.rows:
            self.parked[record.id] = self.spool.append(record, where)
        while self.parked:
            record_id = next(iter(self.parked))
            yield self.spool.get(self.parked.pop(record_id))[1]


def join_files(
    sources: Sequence[Iterable[Row]], folder: Path, counts: Counter[str], dedupe: bool = True
) -> Iterator[Record]:
    """The records of every input joined by id (see `join_record`), in order of first appearance: the first
    input's order, then each id new in a later input, in that input's order. `counts` gets `records_joined` and
    `duplicates_dropped` as the records go by. `folder`: where records met out of order are parked."""
    spool = RecordSpool(folder)
    try:
        later = [_Later(source, spool) for source in sources[1:]]
        for _, record in sources[0]:
            yield _joined(record, later, counts, dedupe)
        for number, source in enumerate(later):
            for record in source.rest():
                yield _joined(record, later[number + 1 :], counts, dedupe)
    finally:
        spool.close()


def _joined(first: Record, later: Sequence[_Later], counts: Counter[str], dedupe: bool) -> Record:
    others = [found for source in later if (found := source.take(first.id)) is not None]
    return join_record(first, others, counts, dedupe) if others else first
