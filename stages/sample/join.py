"""Files joined by id, streaming: the first input is read in order, the later ones are parked on disk and
indexed by id, so memory holds ids and positions, never the records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from stages.core.inputs import InputFile
from stages.core.schema import Record
from stages.core.spool import RecordSpool
from stages.sample.sources import join_record


def join_files(
    sources: Sequence[InputFile], folder: Path, counts: Counter[str], dedupe: bool = True
) -> Iterator[Record]:
    """The records of every input joined by id (see `join_record`), in order of first appearance: the first
    input's order, then each id new in a later input, in that input's order. `counts` gets `records_joined` and
    `duplicates_dropped` as the records go by. `folder`: where the later inputs are parked."""
    spool = RecordSpool(folder)
    try:
        later: dict[str, list[int]] = {}
        for source in sources[1:]:
            for where, record in source:
                later.setdefault(record.id, []).append(spool.append(record, where))
        for _, record in sources[0]:
            yield _joined(record, later.pop(record.id, ()), spool, counts, dedupe)
        for positions in later.values():
            _, first = spool.get(positions[0])
            yield _joined(first, positions[1:], spool, counts, dedupe)
    finally:
        spool.close()


def _joined(
    first: Record, positions: Sequence[int], spool: RecordSpool, counts: Counter[str], dedupe: bool
) -> Record:
    if not positions:
        return first
    others = [(record, where) for where, record in map(spool.get, positions)]
    return join_record(first, others, counts, dedupe)
