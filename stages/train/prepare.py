"""Train data prepared once: the input streamed and validated a record at a time, grouped into queries, tokenised a
batch of queries per fast-tokenizer call and written as Arrow, which training then memory-maps.

Nothing here holds the whole input: a batch of queries at a time, plus, for preference rows, a 16-byte hash per
distinct prompt while the rows are grouped. Every file is written and read as a stream or through short-lived
memory maps, so the preparation's resident memory does not grow with the input (a memory map counts the pages
it has touched as resident until it is closed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from stages.core.errors import UsageError
from stages.core.inputs import InputFile
from stages.lm.packing import token_counts
from stages.lm.queries import Query, fit
from stages.train.data import (
    PREFERENCE_FORMATS,
    Candidates,
    PlainPrompt,
    PreferencePair,
    group_key,
    listwise_candidates,
    plain_prompt,
    preference_pair,
    preference_query,
)

DATA_FILE = "data.arrow"
BATCH = 1000  # queries per tokenizer call and per Arrow record batch: large enough for the tokenizer's threads
GROUP_CHUNK = 4096  # preference rows read back per memory map while grouping

SCHEMA = pa.schema([
    ("prompt", pa.list_(pa.int32())),
    ("responses", pa.list_(pa.list_(pa.int32()))),
    ("rewards", pa.list_(pa.float64())),
    ("pairs", pa.list_(pa.list_(pa.int32()))),  # null: every pair whose rewards differ
])
_ROWS = pa.schema([
    ("group", pa.int32()),
    ("prompt", pa.string()),  # JSON of the plain prompt
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    ("score_chosen", pa.float64()),
    ("score_rejected", pa.float64()),
])
COUNTS = ("queries", "responses", "pairs", "prompts_truncated", "responses_truncated", "tokens_unpacked",
          "tokens_packed")

T = TypeVar("T")


def prepare(source: InputFile, tokenizer: Any, max_length: int, folder: Path) -> dict[str, Any]:
    """Write `folder/data.arrow`, one row per query (SCHEMA), and return what describes it: the input's format and
    record count, and COUNTS over all queries (ranking pairs of one epoch, prompts and responses cut to fit
    `max_length`, tokens unpacked and packed). BadInput, naming file:line, on the first bad record."""
    if tokenizer.eos_token_id is None:
        raise UsageError(f"{tokenizer.name_or_path}: the tokenizer has no EOS token, which ends every response")
    fmt = source.format or _first_format(source)
    if fmt in PREFERENCE_FORMATS:
        candidates: Iterable[Candidates] = _grouped_preferences(source, folder / "rows.arrow")
    else:
        candidates = (listwise_candidates(record, where) for where, record in source)
    counts = dict.fromkeys(COUNTS, 0)
    with pa.OSFile(str(folder / DATA_FILE), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as writer:
        for batch in _chunks(candidates, BATCH):
            columns = tokenise(batch, tokenizer, max_length, counts)
            writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=SCHEMA))
    (folder / "rows.arrow").unlink(missing_ok=True)
    return {"format": source.format, "records": source.count, **counts}


def tokenise(batch: Sequence[Candidates], tokenizer: Any, max_length: int, counts: dict[str, int]) -> dict[str, list]:
    """A batch of queries as SCHEMA's columns: the prompt as the policy reads it (`render_ids`), each response then
    EOS, cut to fit `max_length` (`fit`), in two tokenizer calls; `counts` gets the batch's COUNTS added."""
    prompts = _prompt_ids(tokenizer, [c.prompt for c in batch])
    texts = [text for candidate in batch for text in candidate.texts]
    encoded = iter(tokenizer(texts, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for candidate, prompt in zip(batch, prompts, strict=True):
        responses = [[*next(encoded), eos] for _ in candidate.texts]
        prompt, responses, (prompt_cut, responses_cut) = fit(prompt, responses, max_length)
        query = Query(prompt, responses, candidate.rewards, candidate.pairs)
        unpacked, packed = token_counts([query])
        for name, value in (("queries", 1), ("responses", len(responses)), ("pairs", len(query.ranking_pairs())),
                            ("prompts_truncated", int(prompt_cut)), ("responses_truncated", responses_cut),
                            ("tokens_unpacked", unpacked), ("tokens_packed", packed)):
            counts[name] += value
        columns["prompt"].append(prompt)
        columns["responses"].append(responses)
        columns["rewards"].append(candidate.rewards)
        columns["pairs"].append(None if candidate.pairs is None else [list(p) for p in candidate.pairs])
    return columns


def as_query(row: dict[str, Any]) -> Query:
    """One row of the prepared data as the Query the collator takes."""
    pairs = row["pairs"]
    return Query(prompt=row["prompt"], responses=row["responses"], rewards=row["rewards"],
                 pairs=None if pairs is None else [(better, worse) for better, worse in pairs])


def _prompt_ids(tokenizer: Any, prompts: Sequence[Any]) -> list[list[int]]:
    # What render_ids gives each prompt, with one tokenizer call for the strings and one for the conversations.
    plain = [p if isinstance(p, str) else _messages(p) for p in prompts]
    ids: list[list[int]] = [[] for _ in plain]
    strings = [i for i, p in enumerate(plain) if isinstance(p, str)]
    chats = [i for i, p in enumerate(plain) if not isinstance(p, str)]
    if strings:
        for i, encoded in zip(strings, tokenizer([plain[i] for i in strings])["input_ids"], strict=True):
            ids[i] = list(encoded)
    if chats:
        if not getattr(tokenizer, "chat_template", None):
            raise UsageError("the model's tokenizer has no chat template, which message prompts need")
        rendered = tokenizer.apply_chat_template([plain[i] for i in chats], add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding here, 4.x a plain list.
        rendered = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
        for i, encoded in zip(chats, rendered, strict=True):
            ids[i] = list(encoded)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [prompt or [start] for prompt in ids]  # nothing to condition on: begin as an empty chat would


def _messages(prompt: Any) -> PlainPrompt:
    # Messages as dicts with all their fields, from a record (pydantic) or from the JSON of a grouped row.
    return [m if isinstance(m, dict) else m.model_dump() for m in prompt]


def _first_format(source: InputFile) -> str:
    # The format auto-detection gives: that of the first record (a bad or missing one is the error a pass gives).
    first = InputFile(source.spec, replace(source.inputs, limit=1))
    for _ in first:
        pass
    return first.format or "rrhf"


def _grouped_preferences(source: InputFile, rows_file: Path) -> Iterator[Candidates]:
    """Preference rows as one query per prompt, in order of first appearance. One pass writes each validated row
    with its group's number (prompts are held as 16-byte hashes); the rows are then read back in group order."""
    groups: dict[bytes, int] = {}
    with pa.OSFile(str(rows_file), "wb") as sink, pa.ipc.new_file(sink, _ROWS) as writer:
        for chunk in _chunks(source, BATCH):
            rows = []
            for where, record in chunk:
                pair = preference_pair(record, where)
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
    if rows:
        yield preference_query(prompt, rows)


def _rows_in_group_order(path: Path) -> Iterator[dict[str, Any]]:
    # Arrow's sort is stable, so a group's rows keep their input order. Each chunk is taken through its own memory
    # map, closed before the next, so the pages read never pile up as resident memory.
    order = _read(path, lambda table: pc.sort_indices(table.column("group")))
    for start in range(0, len(order), GROUP_CHUNK):
        chunk = order.slice(start, GROUP_CHUNK)
        yield from _read(path, lambda table, chunk=chunk: table.take(chunk).to_pylist())


def _read(path: Path, use: Any) -> Any:
    with pa.memory_map(str(path)) as mapped:
        return use(pa.ipc.open_file(mapped).read_all())


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
