"""Train data prepared once: the input streamed and validated a record at a time, grouped into queries, tokenised a
batch of queries at a time (`stages.train.tokenise`) and written as Arrow, which training then memory-maps.

Nothing here holds the whole input: a few batches of queries at a time, plus, for preference rows, a 16-byte hash
per distinct prompt while the rows are grouped. Files are written and read as streams or through short-lived
memory maps, so the preparation's resident memory does not grow with the input (a memory map counts the pages it
has touched as resident until it is closed).
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate, chain, islice
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from stages.contract.errors import UsageError
from stages.contract.inputs import InputPass, Row
from stages.train.data import (
    PREFERENCE_FORMATS,
    Candidates,
    DataNeeds,
    PreferencePair,
    check_preference,
    group_key,
    listwise_candidates,
    plain_prompt,
    preference_pair,
    preference_query,
)
from stages.train.dataset import DATA_FILE, PreparedInfo
from stages.train.tokenise import SCHEMA, Counts, tokenised, worker_count

BATCH = 1000  # queries per tokenizer call and per Arrow record batch: large enough for the tokenizer's threads
GROUP_CHUNK = 1024  # preference rows read back per memory map while grouping
_ROWS = pa.schema([
    ("group", pa.int32()),
    ("prompt", pa.string()),  # JSON of the plain prompt
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    ("score_chosen", pa.float64()),
    ("score_rejected", pa.float64()),
])

T = TypeVar("T")


def prepare(
    source: InputPass, tokenizer: Any, max_length: int, folder: Path, needs: DataNeeds = DataNeeds()
) -> PreparedInfo:
    """Write a prepared folder from one whole pass: DATA_FILE, one row per query (`tokenise.SCHEMA`), and the
    PreparedInfo that describes it (the input's format and record count, the Counts over all queries), which it
    returns. BadInput,
    naming file:line, on the first bad record or one lacking what the loss `needs`."""
    if tokenizer.eos_token_id is None:
        raise UsageError(f"{tokenizer.name_or_path}: the tokenizer has no EOS token, which ends every response")
    counts = Counts()
    with pa.OSFile(str(folder / DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as writer:
        batches = _chunks(candidates(source, folder, needs), BATCH)
        for batch, batch_counts in tokenised(batches, tokenizer, max_length, worker_count(source.source.spec)):
            writer.write_batch(batch)
            counts += batch_counts
    read = source.summary  # every batch was taken: the pass has ended
    info = PreparedInfo(read.format, read.count, counts)
    info.write(folder)
    return info


def candidates(source: InputPass, workdir: Path, needs: DataNeeds = DataNeeds()) -> Iterator[Candidates]:
    """The queries of a pass before tokenisation, validated a record at a time: a scored or ranked record is one
    query; preference rows are grouped by prompt (`data.group_key`), one query per prompt in order of first
    appearance, through a scratch file in `workdir` removed once they are all read. The format is known on
    return (before any tokenising process is forked): the first row is read for it, or is the error it gives."""
    rows = iter(source)
    first = next(rows, None)  # an empty input ends the pass here, which names it
    remaining = chain([first] if first is not None else [], rows)
    if (source.format or "rrhf") in PREFERENCE_FORMATS:
        return _grouped_preferences(remaining, workdir / "rows.arrow", needs)
    return (listwise_candidates(record, where, needs) for where, record in remaining)


def _grouped_preferences(source: Iterable[Row], rows_file: Path, needs: DataNeeds) -> Iterator[Candidates]:
    """Preference rows as one query per prompt, in order of first appearance. One pass writes each validated row
    with its group's number (prompts are held as 16-byte hashes); the rows are then read back in group order."""
    groups: dict[bytes, int] = {}
    with pa.OSFile(str(rows_file), "wb") as sink, pa.ipc.new_file(sink, _ROWS) as writer:
        for chunk in _chunks(source, BATCH):
            rows = []
            for where, record in chunk:
                pair = preference_pair(record, where)
                check_preference(pair, needs, where)
                key = hashlib.blake2b(group_key(record).encode(), digest_size=16).digest()
                rows.append({"group": groups.setdefault(key, len(groups)),
                             "prompt": json.dumps(plain_prompt(record.prompt)), "chosen": pair.chosen,
                             "rejected": pair.rejected, "score_chosen": pair.score_chosen,
                             "score_rejected": pair.score_rejected})
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=_ROWS))
    groups.clear()
    prompt, rows, current = None, [], -1
    for row in _rows_in_group_order(rows_file):
        if row["group"] != current and rows:
            yield preference_query(prompt, rows)
            rows = []
        if not rows:
            prompt, current = json.loads(row["prompt"]), row["group"]
        rows.append(PreferencePair(row["chosen"], row["rejected"], row["score_chosen"], row["score_rejected"]))
    rows_file.unlink()
    if rows:
        yield preference_query(prompt, rows)


def _rows_in_group_order(path: Path) -> Iterator[dict[str, Any]]:
    # Arrow's sort is stable, so a group's rows keep their input order. Each chunk of rows is taken batch by batch
    # (a table's take would first join every batch) through its own memory map, closed before the next, so the
    # pages read (and their neighbours, which the kernel maps along) never pile up as resident memory.
    order, starts = _read(path, lambda reader: (
        pc.sort_indices(reader.read_all().column("group")).to_pylist(),
        list(accumulate((reader.get_batch(b).num_rows for b in range(reader.num_record_batches)), initial=0)),
    ))
    for start in range(0, len(order), GROUP_CHUNK):
        yield from _read(path, lambda reader, start=start: _take(reader, starts, order[start : start + GROUP_CHUNK]))


def _take(reader: pa.ipc.RecordBatchFileReader, starts: list[int], indices: list[int]) -> list[dict[str, Any]]:
    wanted: dict[int, list[int]] = {}
    for index in indices:
        wanted.setdefault(bisect_right(starts, index) - 1, []).append(index)
    rows: dict[int, dict[str, Any]] = {}
    for b, chosen in wanted.items():
        taken = reader.get_batch(b).take(pa.array([index - starts[b] for index in chosen])).to_pylist()
        rows.update(zip(chosen, taken, strict=True))
    return [rows[index] for index in indices]


def _read(path: Path, use: Any) -> Any:
    with pa.memory_map(str(path)) as mapped:
        return use(pa.ipc.open_file(mapped))


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
