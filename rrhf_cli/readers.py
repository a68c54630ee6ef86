"""Decode input files into rows, each with its location: .jsonl, .json, .csv, .parquet and hf:NAME[:SPLIT]."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rrhf_cli.errors import BadInput, Location, RrhfError, first_line

Row = tuple[Location, Any]
HF_PREFIX = "hf:"


def iter_rows(spec: str | Path) -> Iterator[Row]:
    """Yield (location, decoded value) for each record of a file or `hf:` dataset."""
    text = str(spec)
    if text.startswith(HF_PREFIX):
        yield from _hf_rows(text)
        return
    path = Path(spec)
    if not path.is_file():
        raise BadInput(text, "no such file" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        yield from _json_rows(path)
    elif suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    else:  # .jsonl, .ndjson and anything else: one JSON value per line
        yield from _jsonl_rows(path)


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = Location(str(path), number)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise BadInput(where, f"not UTF-8 text (byte {err.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise BadInput(where, f"invalid JSON ({err.msg} at column {err.colno})") from None


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise BadInput(Location(str(path), line), "not UTF-8 text") from None


def _json_rows(path: Path) -> Iterator[Row]:
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise BadInput(Location(str(path), err.lineno), f"invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, list):
        raise BadInput(str(path), "a .json input must hold an array of records (use .jsonl for one record per line)")
    for number, item in enumerate(value, start=1):
        yield Location(str(path), number, unit="item"), item


def _csv_rows(path: Path) -> Iterator[Row]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    for row in reader:
        where = Location(str(path), reader.line_num)
        if None in row:
            raise BadInput(where, f"has more cells than the header's {len(reader.fieldnames or [])} columns")
        yield where, {key: _csv_cell(where, key, cell) for key, cell in row.items()}


def _csv_cell(where: Location, key: str, cell: str | None) -> Any:
    # CSV has no null and no nesting: an empty cell is missing, and a cell holding a JSON
    # array or object (a message list, a responses list) is decoded.
    if cell is None or cell == "":
        return None
    if cell[:1] in "[{":
        try:
            return json.loads(cell)
        except json.JSONDecodeError as err:
            raise BadInput(where, f"column '{key}' holds invalid JSON ({err.msg})") from None
    return cell


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for unreadable files
        raise BadInput(str(path), f"not a readable Parquet file ({first_line(err)})") from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield Location(str(path), number, unit="row"), row


def _hf_rows(spec: str) -> Iterator[Row]:
    name, _, split = spec[len(HF_PREFIX) :].partition(":")
    if not name:
        raise BadInput(spec, "expected hf:NAME or hf:NAME:SPLIT")
    split = split or "train"
    try:
        import datasets
        from datasets.exceptions import DatasetNotFoundError

        with _quiet_hub():
            dataset = datasets.load_dataset(name, split=split)
    except (DatasetNotFoundError, FileNotFoundError, ValueError) as err:
        raise BadInput(spec, f"cannot load dataset '{name}' split '{split}': {first_line(err)}") from None
    except Exception as err:  # hub unreachable, offline mode, auth: one line, not a traceback
        raise RrhfError(f"{spec}: cannot load dataset '{name}': {first_line(err)}") from None
    for number, row in enumerate(dataset, start=1):
        yield Location(spec, number, unit="row"), row


@contextmanager
def _quiet_hub() -> Iterator[None]:
    # The hub client logs every retry; the failure is reported once, by the caller.
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "datasets")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


