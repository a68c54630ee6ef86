"""A prepared folder: DATA_FILE, one Arrow row per query (`tokenise.SCHEMA`), and INFO_FILE, what was counted while
the queries were prepared (`PreparedInfo`). Written by `prepare`, read here, as the dataset training indexes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from stages.lm.queries import Query
from stages.train.tokenise import Counts, as_query

LAYOUT = 4  # the prepared folder's layout: a change makes every earlier folder a stranger
DATA_FILE = "data.arrow"
INFO_FILE = "info.json"


@dataclass(frozen=True)
class PreparedInfo:
    """What describes a prepared folder: the input's format and record count, and the Counts over all queries."""

    format: str | None
    records: int
    counts: Counts

    def write(self, folder: Path) -> None:
        """Write INFO_FILE into `folder` (flat JSON: the layout, the format, the records and each count)."""
        info = {"layout": LAYOUT, "format": self.format, "records": self.records, **asdict(self.counts)}
        (folder / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> PreparedInfo | None:
        """The info in `folder`, or None where it is absent, unreadable or of another layout."""
        try:
            info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or info.get("layout") != LAYOUT:
            return None
        counts = {field.name: info.get(field.name) for field in fields(Counts)}
        if not isinstance(info.get("format"), str | None) or not all(
            type(value) is int for value in (info.get("records"), *counts.values())
        ):
            return None
        return cls(info["format"], info["records"], Counts(**counts))


def complete(folder: Path) -> PreparedInfo | None:
    """The info of a complete prepared folder, or None: absent, or not complete (its info unreadable, of another
    layout, or its data not holding the queries the info counts)."""
    info = PreparedInfo.read(folder)
    if info is None:
        return None
    import pyarrow as pa

    try:
        with pa.memory_map(str(folder / DATA_FILE)) as mapped:
            queries = pa.ipc.open_stream(mapped).read_all().num_rows
    except (OSError, pa.ArrowInvalid):
        return None
    return info if queries == info.counts.queries else None


class PreparedData(Sequence[Query]):
    """The prepared queries, memory-mapped (a `datasets.Dataset` over DATA_FILE) and built one at a time as they are
    indexed, so a rank holds only the batches it trains on; and what was counted over all of them (`info`)."""

    def __init__(self, folder: Path, info: PreparedInfo) -> None:
        from datasets import Dataset

        self.folder, self.info = folder, info
        self.rows = Dataset.from_file(str(folder / DATA_FILE))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Query:  # type: ignore[override]
        return as_query(self.rows[index])

    def sample(self, size: int) -> list[Query]:
        """At most `size` queries spread evenly over the data, in order: enough to estimate what packing saves
        over all of them, without building them all. Read from the file, not the memory map, whose pages the
        kernel maps many at a time: a thousand rows would map most of the file."""
        import pyarrow as pa

        n = len(self.rows)
        wanted = sorted({i * n // size for i in range(size)}) if n > size else list(range(n))
        rows: list[dict[str, Any]] = []
        start = 0
        with pa.OSFile(str(self.folder / DATA_FILE)) as handle:
            for batch in pa.ipc.open_stream(handle):
                end = start + batch.num_rows
                local = [index - start for index in wanted[len(rows) :] if index < end]
                if local:
                    rows += batch.take(pa.array(local, pa.int64())).to_pylist()
                start = end
        return [as_query(row) for row in rows]
