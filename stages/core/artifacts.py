"""Reading inputs into validated records and writing artifacts atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from stages.core.errors import BadInput, Location
from stages.core.formats import FormatError, InputOptions, detect_format, map_fields, to_contract
from stages.core.ids import IdAssigner
from stages.core.readers import HF_PREFIX, iter_rows
from stages.core.schema import PROMPT_TAGS, Record, kind_of


@dataclass
class LoadedInput:
    """An input fully read and validated: its records (with where each came from), format and content hash."""

    spec: str
    format: str
    records: list[Record]
    locations: list[Location]
    sha256: str | None
    options: dict[str, Any] = field(default_factory=dict)  # InputOptions.described()


def load_records(spec: str | Path, inputs: InputOptions = InputOptions()) -> LoadedInput:
    """Read every record of an input (the first `limit`), mapping its columns and format onto the contract;
    BadInput on the first bad row."""
    fmt = None if inputs.format == "auto" else inputs.format
    assign_id = IdAssigner()
    seen: dict[str, Location] = {}
    records: list[Record] = []
    locations: list[Location] = []
    for where, row in iter_rows(spec):
        if inputs.limit is not None and len(records) >= inputs.limit:
            break
        if not isinstance(row, dict):
            raise BadInput(where, f"expected a JSON object, got {kind_of(row)}")
        try:
            row = map_fields(row, inputs.fields)
            fmt = fmt or detect_format(row)
            fields = to_contract(row, fmt)
        except FormatError as err:
            raise BadInput(where, str(err)) from None
        record = record_from_fields(where, fields, assign_id)
        if record.id in seen:
            raise BadInput(where, f"duplicate id '{record.id}' (first at {seen[record.id]})")
        seen[record.id] = where
        records.append(record)
        locations.append(where)
    if not records:
        raise BadInput(str(spec), "no records (the input is empty)")
    text = str(spec)
    digest = None if text.startswith(HF_PREFIX) else file_sha256(Path(text))
    return LoadedInput(
        spec=text, format=fmt or "rrhf", records=records, locations=locations, sha256=digest,
        options=inputs.described(),
    )


def record_from_fields(where: Location, fields: dict[str, Any], assign_id: IdAssigner) -> Record:
    """Validate contract fields into a Record, deriving the id from the prompt when none is given."""
    fields = dict(fields)
    given = fields.get("id")
    if given is None:
        fields["id"] = assign_id(fields.get("prompt"))
    elif isinstance(given, int) and not isinstance(given, bool):
        fields["id"] = str(given)
    try:
        return Record.model_validate(fields)
    except ValidationError as err:
        raise BadInput(where, describe_validation_error(err)) from None


def describe_validation_error(err: ValidationError) -> str:
    """One line for the first problem pydantic found, with the field path written as JSON-ish `a[0].b`."""
    first = err.errors()[0]
    path = ""
    for part in first["loc"]:
        if part in PROMPT_TAGS:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    message = message[:1].lower() + message[1:]
    if first["type"] == "missing":
        return f"'{path}' is missing"
    if first.get("input", ...) is None and first["type"] != "value_error":
        return f"'{path}' is null"
    return f"'{path}' {message}" if first["type"] == "value_error" else f"'{path}': {message}"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_open(path: Path) -> Iterator[IO[str]]:
    """Write to a temp file beside `path`, then fsync and rename; on error the old file is untouched. A symlinked
    `path` is written through (its target is replaced, the link kept), and the file gets the umask's mode."""
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an artifact is an ordinary file
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None:  # a write error (a full disk) names no file by itself
            raise OSError(err.errno, f"cannot write {path}: {err.strerror}") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _umask() -> int:
    # Read without changing it: os.umask can only be read by setting it.
    for line in Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []:
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_records(path: Path, records: Iterable[Record | dict[str, Any]]) -> int:
    """Write records (or rows of another artifact kind, as dicts) as JSONL atomically; returns the count."""
    count = 0
    with atomic_open(path) as handle:
        for record in records:
            row = record.to_json_dict() if isinstance(record, Record) else record
            handle.write(dumps(row) + "\n")
            count += 1
    return count


def write_json(path: Path, value: Any) -> None:
    """Write one JSON document atomically, indented for people to read."""
    with atomic_open(path) as handle:
        handle.write(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def dumps(value: Any) -> str:
    """One compact JSONL line; NaN and infinities are refused rather than written as invalid JSON."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def fsync_dir(folder: Path) -> None:
    """Make a rename into `folder` durable (a no-op where the filesystem does not let a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
