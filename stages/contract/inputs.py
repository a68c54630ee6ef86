"""Inputs read as streams of validated records: each pass decodes, maps and validates one row at a time, so
memory holds a row (and the ids, for duplicate detection), never the file."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stages.contract.artifacts import file_sha256
from stages.contract.errors import BadInput, Location
from stages.contract.formats import FormatError, InputOptions, detect_format, map_fields, to_contract
from stages.contract.id_index import IdList, id_hash
from stages.contract.ids import IdAssigner
from stages.contract.readers import HF_PREFIX, iter_rows
from stages.contract.schema import PROMPT_TAGS, Record, kind_of

Row = tuple[Location, Record]


class InputFile:
    """One input (a file or `hf:` dataset) with the options that map it onto the contract. Iterating it reads
    it once more, validating as it goes (BadInput, naming file:line, on the first bad row); after one whole
    pass, `format`, `count` and (for `scan`) `ids` describe it."""

    def __init__(self, spec: str | Path, inputs: InputOptions = InputOptions()) -> None:
        self.spec = str(spec)
        self.inputs = inputs
        self.format: str | None = None if inputs.format == "auto" else inputs.format
        self.count: int | None = None
        self.ids: IdList | None = None
        self._sha256: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The options that change what is read (InputOptions.described())."""
        return self.inputs.described()

    @property
    def sha256(self) -> str | None:
        """The content hash of a file input (read once, in blocks); None for an `hf:` dataset."""
        if self._sha256 is None and not self.spec.startswith(HF_PREFIX):
            self._sha256 = file_sha256(Path(self.spec))
        return self._sha256

    def scan(self) -> InputFile:
        """One validating pass that keeps every id, in input order, compactly: for stages that check the whole
        input before any work and address records by id."""
        ids = IdList()
        for _, record in self:
            ids.append(record.id)
        self.ids = ids
        return self

    def __iter__(self) -> Iterator[Row]:
        # Ids are checked for duplicates by their hashes (8 bytes each), sorted once the pass ends: a duplicate
        # is then found and named by a second, exact pass. A stage's output appears only after the last row,
        # so a duplicate reported at the end has still changed nothing.
        keys = array("q")
        count = 0
        for where, record in self._rows():
            keys.append(id_hash(record.id))
            count += 1
            yield where, record
        if not count:
            raise BadInput(self.spec, "no records (the input is empty)")
        ordered = sorted(keys)
        if any(a == b for a, b in itertools.pairwise(ordered)):
            del ordered
            self._name_duplicate()
        self.count = count

    def _rows(self) -> Iterator[Row]:
        fmt = self.format
        limit = self.inputs.limit
        assign_id = IdAssigner()
        count = 0
        for where, row in iter_rows(self.spec):
            if limit is not None and count >= limit:
                break
            if not isinstance(row, dict):
                raise BadInput(where, f"expected a JSON object, got {kind_of(row)}")
            try:
                row = map_fields(row, self.inputs.fields)
                if fmt is None:  # known from the first row on, to a reader that acts on it as it goes
                    fmt = self.format = detect_format(row)
                fields = to_contract(row, fmt)
            except FormatError as err:
                raise BadInput(where, str(err)) from None
            count += 1
            yield where, record_from_fields(where, fields, assign_id)
        self.format = fmt or "rrhf"

    def _name_duplicate(self) -> None:
        """BadInput at the first repeated id, naming where it first was (hashes only said one may exist)."""
        seen: dict[str, Location] = {}
        for where, record in self._rows():
            if record.id in seen:
                raise BadInput(where, f"duplicate id '{record.id}' (first at {seen[record.id]})")
            seen[record.id] = where

    def records(self) -> Iterator[Record]:
        """The records alone, in input order."""
        return (record for _, record in self)


@dataclass
class LoadedInput:
    """An input read whole into memory: for small inputs (tests, plots, a dozen eval prompts), never a stage's
    main input."""

    spec: str
    format: str
    records: list[Record]
    locations: list[Location]
    sha256: str | None
    options: dict[str, Any]

    @property
    def count(self) -> int:
        """How many records it holds."""
        return len(self.records)


def load_records(spec: str | Path, inputs: InputOptions = InputOptions()) -> LoadedInput:
    """Every record of a small input, in memory; BadInput on the first bad row."""
    source = InputFile(spec, inputs)
    locations, records = [], []
    for where, record in source:
        locations.append(where)
        records.append(record)
    return LoadedInput(source.spec, source.format or "rrhf", records, locations, source.sha256, source.options)


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
