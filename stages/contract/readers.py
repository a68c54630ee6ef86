"""Decode input files into rows, each with its location: .jsonl, .json, .csv, .parquet and
hf:NAME[:CONFIG][:SPLIT]."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from stages.contract.errors import BadInput, Location, RrhfError, first_line
from stages.contract.hashed_read import HashedRead, WholeFile
from stages.contract.json_array import MAX_DEPTH, Row, json_array_rows, json_problem, too_deep

HF_PREFIX = "hf:"
# Deeper rows are refused when read: the artifact writer's serializer stops at 255 levels, and no real record
# needs more than a handful.
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # how JSON text writes one (or half a valid pair)
_FOLD = bytes.maketrans(b"123456789{", b"000000000[")
_LONG_DIGITS = b"0" * 19  # a run of digits orjson may read as an integer beyond 64 bits (it rounds those)
_HUGE_FLOAT = re.compile(rb"-?\d[\d.]*[eE][+]?\d{3,}")


class RowReader:
    """One pass over a file or `hf:` dataset: iterating yields (location, decoded value) for each record while the
    file's bytes are hashed as they are read. Once the pass ended (the rows ran out, or `stop` cut it short)
    `sha256` is the hash of the bytes read (None for an `hf:` dataset); a file whose inode, size or modification
    time moved during the pass is refused (BadInput), so the hash names the very bytes the rows came from."""

    def __init__(self, spec: str | Path) -> None:
        self.spec = str(spec)
        self.sha256: str | None = None
        self.ended = False
        self._file: HashedRead | WholeFile | None = None
        self._dataset: Any = None  # an `hf:` dataset, once loaded

    def __iter__(self) -> Iterator[Row]:
        path = Path(self.spec)
        suffix = path.suffix.lower()
        if self.spec.startswith(HF_PREFIX):
            self._dataset = load_hf(self.spec)
            yield from _checked(_hf_rows(self.spec, self._dataset))
            self.stop()
            return
        if not path.is_file():
            raise BadInput(self.spec, "no such file" if not path.exists() else "not a file")
        if suffix == ".parquet":
            self._file = WholeFile(path)
            yield from _checked(_parquet_rows(path))
        else:
            with HashedRead(path) as self._file:
                if suffix == ".json":
                    yield from _checked(json_array_rows(path, self._file.text()))
                elif suffix == ".csv":
                    yield from _checked(_csv_rows(path, self._file.text()))
                else:  # .jsonl, .ndjson and anything else: one JSON value per line
                    yield from _jsonl_rows(path, self._file.binary)  # checks the lines that may need it, itself
                self.stop()
                return
        self.stop()

    def stop(self) -> None:
        """End the pass here (the rows not taken are hashed, not decoded): `sha256` describes the whole file."""
        if self.ended:
            return
        if self._file is not None:
            self.sha256 = self._file.finish()
        elif self._dataset is not None:
            self.sha256 = hf_digest(self.spec, self._dataset)
        self.ended = True


def iter_rows(spec: str | Path) -> Iterator[Row]:
    """Yield (location, decoded value) for each record of a file or `hf:` dataset (a RowReader's rows)."""
    return iter(RowReader(spec))


def _checked(rows: Iterator[Row]) -> Iterator[Row]:
    for where, row in rows:
        if isinstance(row, str | dict | list | float):
            check_value(where, row)
        yield where, row


def check_value(where: Location, value: Any) -> None:
    """BadInput unless `value` nests at most MAX_DEPTH levels, every string in it (keys too) is valid Unicode
    (JSON's `\\ud800` escape decodes to a lone surrogate, which no UTF-8 writer or hash can encode) and every
    number is finite (a table's NaN has no JSON form)."""
    # A stack, not recursion, since depth is what is checked; reversed so the first problem in the file is named.
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise BadInput(where, f"{_named(path)} holds invalid Unicode (a lone surrogate)")
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                what = "NaN" if math.isnan(item) else "an infinity"
                raise BadInput(where, f"{_named(path)} is {what}, which JSON does not allow (write null or a number)")
            continue
        if depth > MAX_DEPTH:
            raise BadInput(where, too_deep())
        if isinstance(item, list):
            stack.extend(
                (child, f"{path}[{i}]", depth + 1)
                for i, child in reversed(list(enumerate(item)))
                if isinstance(child, str | dict | list | float)
            )
            continue
        for key in item:
            if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                raise BadInput(where, f"a field name in {_named(path)} holds invalid Unicode (a lone surrogate)")
        stack.extend(
            (child, f"{path}.{key}" if path else str(key), depth + 1)
            for key, child in reversed(item.items())
            if isinstance(child, str | dict | list | float)
        )


def _named(path: str) -> str:
    return f"'{path}'" if path else "the record"


def _jsonl_rows(path: Path, handle: IO[bytes]) -> Iterator[Row]:
    source = str(path)
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if not raw.strip():
                continue
            value = _slow_json_line(Location(source, number), raw)
        # Walking every row would cost as much as decoding it: only a line with a surrogate's escape, a
        # number orjson would round, or enough brackets can fail the check. One translate (in C) serves the
        # last two: digits become 0 and braces brackets (a regex for a digit run costs ten times the decoding).
        folded = raw.translate(_FOLD)
        long_integer = _LONG_DIGITS in folded
        if _ESCAPED_SURROGATE.search(raw) or folded.count(b"[") > MAX_DEPTH or long_integer:
            value = _checked_line(Location(source, number), raw, value, long_integer)
        yield Location(source, number), value


def _slow_json_line(where: Location, raw: bytes) -> Any:
    """The line decoded by the standard library, for its error messages (orjson refused it)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(where, f"not UTF-8 text (byte {err.start + 1} of the line)") from None
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise BadInput(where, json_problem(err)) from None
    except RecursionError:  # json's decoder recurses once per level
        raise BadInput(where, too_deep()) from None
    check_value(where, value)  # names a NaN or an infinity, which orjson refuses
    number = _HUGE_FLOAT.search(raw)
    raise BadInput(where, f"holds a number too large for a 64-bit float ({number.group() if number else '?'})")


def _checked_line(where: Location, raw: bytes, value: Any, long_integer: bool) -> Any:
    # orjson reads an integer beyond 64 bits as a float; the standard library keeps it exact.
    if long_integer:
        value = json.loads(raw)
    check_value(where, value)
    return value


def _read_text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise BadInput(Location(str(path), line), "not UTF-8 text") from None


def _csv_rows(path: Path, handle: io.TextIOWrapper) -> Iterator[Row]:
    # The csv module refuses cells over 128 KiB by default; a long prompt is a legitimate cell.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    # Streamed: a CSV input can be as large as a JSONL one.
    reader = csv.DictReader(handle)
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except UnicodeDecodeError:
            _read_text(path, path.read_bytes())  # names the line
            raise
        except csv.Error as err:
            raise BadInput(Location(str(path), reader.line_num), f"not readable CSV ({first_line(err)})") from None
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
            raise BadInput(where, f"column '{key}' holds invalid JSON ({err.msg.removesuffix(' at')})") from None
        except RecursionError:
            raise BadInput(where, f"column '{key}' is {too_deep()}") from None
    return cell


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)  # a row group at a time, not the table
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield Location(str(path), number, unit="row"), row
    except Exception as err:  # pyarrow raises several unrelated types for unreadable files
        raise BadInput(str(path), f"not a readable Parquet file ({first_line(err)})") from None


def parse_hf_spec(spec: str) -> tuple[str, str | None, str | None]:
    """(NAME, CONFIG, SPLIT) of `hf:NAME[:CONFIG][:SPLIT]`; a single part after NAME comes back as the split (the
    loader tries it as a config where the dataset has no such split). ValueError when malformed."""
    parts = re.split(r":(?![^\[]*\])", spec[len(HF_PREFIX) :])  # not the colons of a slice, train[:2000]
    if not parts[0] or len(parts) > 3 or any(not part for part in parts[1:]):
        raise ValueError("expected hf:NAME, hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return parts[0], None, parts[1] if len(parts) == 2 else None


def load_hf(spec: str) -> Any:
    """The `datasets` split an `hf:` spec names, loaded (from the cache where it is there); one line if it cannot be."""
    try:
        name, config, split = parse_hf_spec(spec)
    except ValueError as err:
        raise BadInput(spec, str(err)) from None
    try:
        import datasets
        from datasets.exceptions import DatasetNotFoundError

        with _quiet_hub():
            dataset, config, split = _load_hf(datasets, name, config, split)
    except (DatasetNotFoundError, FileNotFoundError, ValueError) as err:
        what = f"'{name}'" + (f" config '{config}'" if config else "") + f" split '{split or 'train'}'"
        raise BadInput(spec, f"cannot load dataset {what}: {first_line(err)}") from None
    except Exception as err:  # hub unreachable, offline mode, auth: one line, not a traceback
        raise RrhfError(f"{spec}: cannot load dataset '{name}': {first_line(err)}") from None
    return dataset


def _hf_rows(spec: str, dataset: Any) -> Iterator[Row]:
    for number, row in enumerate(dataset, start=1):
        yield Location(spec, number, unit="row"), row


def hf_digest(spec: str, dataset: Any) -> str | None:
    """A hash of what an `hf:` dataset holds: the spec (its config and slice) and the bytes of the Arrow files
    `datasets` prepared it into, so a dataset revised under the same name is another input; None where it has no
    files (a dataset held in memory)."""
    files = sorted({entry["filename"] for entry in dataset.cache_files})
    if not files:
        return None
    digest = hashlib.sha256(spec.encode())
    for name in files:
        with open(name, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _load_hf(datasets: Any, name: str, config: str | None, split: str | None) -> tuple[Any, str | None, str]:
    # hf:NAME:X where X is no split of NAME names a config (hf:openai/gsm8k:main), read at its train split.
    try:
        return datasets.load_dataset(name, config, split=split or "train"), config, split or "train"
    except ValueError as err:
        if config is not None or split is None:
            raise
        first = err
    try:
        return datasets.load_dataset(name, split, split="train"), split, "train"
    except ValueError:
        raise first from None


@contextmanager
def _quiet_hub() -> Iterator[None]:
    # The hub client logs every retry; the failure is reported once, by the caller. Preparing a split draws a
    # progress bar per split, noise beside rrhf's own progress.
    from datasets.utils import logging as datasets_logging

    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "datasets")]
    levels = [logger.level for logger in loggers]
    bars = datasets_logging.is_progress_bar_enabled()
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if bars:
            datasets_logging.enable_progress_bar()


