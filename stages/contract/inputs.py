"""Inputs read as streams of validated records: each pass decodes, maps and validates one row at a time, so
memory holds a row (and the ids, for duplicate detection), never the file."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stages.contract.artifacts import file_sha256
from stages.contract.errors import BadInput, Location
from stages.contract.formats import FormatError, InputOptions, detect_format, map_fields, to_contract
from stages.contract.id_index import IdList, id_hash
from stages.contract.ids import IdAssigner
from stages.contract.readers import HF_PREFIX, RowReader, hf_digest, load_hf
from stages.contract.schema import PROMPT_TAGS, Record, kind_of

Row = tuple[Location, Record]


@dataclass(frozen=True)
class InputSummary:
    """One whole pass over an input: its format, record count and the hash of the bytes the records came from
    (None for an `hf:` dataset), with the options it was read under; `ids` (kept where asked for, in input order)
    is left out of equality."""

    spec: str
    format: str
    count: int
    sha256: str | None
    options: dict[str, Any]
    ids: IdList | None = field(default=None, compare=False, repr=False)


class InputFile:
    """One input (a file or `hf:` dataset) with the options that map it onto the contract. `read` starts a pass,
    which validates as it goes (BadInput, naming file:line, on the first bad row) and ends in an InputSummary."""

    def __init__(self, spec: str | Path, inputs: InputOptions = InputOptions()) -> None:
        self.spec = str(spec)
        self.inputs = inputs

    @property
    def options(self) -> dict[str, Any]:
        """The options that change what is read (InputOptions.described())."""
        return self.inputs.described()

    def read(self, keep_ids: bool = False, sha256: str | None = None) -> InputPass:
        """A new pass over the input. `keep_ids`: its summary keeps every id, in input order, compactly (for
        stages that check the whole input before any work and address records by id). `sha256`: the hash an
        earlier pass (or run) recorded; bytes that differ are refused, naming the file, once the pass ends."""
        return InputPass(self, keep_ids, sha256)

    def scan(self) -> InputSummary:
        """One whole validating pass, keeping the ids: what a stage reads before any work."""
        rows = self.read(keep_ids=True)
        for _ in rows:
            pass
        return rows.summary

    def content_sha256(self) -> str | None:
        """The hash of the input as it is now, without reading it as records: what a run records before its pass,
        which it then gives to `read(sha256=...)`. An `hf:` dataset's is `hf_digest`'s."""
        if self.spec.startswith(HF_PREFIX):
            return hf_digest(self.spec, load_hf(self.spec))
        return file_sha256(Path(self.spec))

    def __iter__(self) -> Iterator[Row]:
        """The rows of a new pass, for a reader that needs no summary."""
        return iter(self.read())

    def records(self) -> Iterator[Record]:
        """The records alone, in input order, of a new pass."""
        return (record for _, record in self)


class InputPass:
    """One pass over an input, iterated once: (location, record) rows. `format` is known from the first row on;
    `summary` once the rows ran out."""

    def __init__(self, source: InputFile, keep_ids: bool = False, sha256: str | None = None) -> None:
        self.source = source
        self.expected = sha256
        self.format: str | None = None if source.inputs.format == "auto" else source.inputs.format
        self._ids = IdList() if keep_ids else None
        self._summary: InputSummary | None = None
        self._rows = self._validated()

    @property
    def summary(self) -> InputSummary:
        """What the whole pass read; only once its rows ran out (a stage consumes them all before it writes)."""
        if self._summary is None:
            raise RuntimeError(f"{self.source.spec}: the pass has not ended, so nothing describes it yet")
        return self._summary

    @property
    def ended(self) -> bool:
        """Whether the rows ran out, so `summary` describes the pass."""
        return self._summary is not None

    def __iter__(self) -> Iterator[Row]:
        return self._rows

    def _validated(self) -> Iterator[Row]:
        # Ids are checked for duplicates by their hashes (8 bytes each), sorted once the pass ends: a duplicate
        # is then found and named by a second, exact pass. A stage's output appears only after the last row,
        # so a duplicate reported at the end has still changed nothing.
        spec = self.source.spec
        keys = array("q")
        count = 0
        reader = RowReader(spec)
        for where, record in self._records(reader):
            keys.append(id_hash(record.id))
            if self._ids is not None:
                self._ids.append(record.id)
            count += 1
            yield where, record
        sha256 = reader.sha256
        if self.expected is not None and sha256 != self.expected:
            raise BadInput(spec, "changed while it was read (its content is not what this run read of it before); "
                                 "run again once nothing writes to it")
        if not count:
            raise BadInput(spec, "no records (the input is empty)")
        ordered = sorted(keys)
        if any(a == b for a, b in itertools.pairwise(ordered)):
            del ordered
            self._name_duplicate(sha256)
        self._summary = InputSummary(spec, self.format or "rrhf", count, sha256, self.source.options, self._ids)

    def _records(self, reader: RowReader) -> Iterator[Row]:
        inputs = self.source.inputs
        assign_id = IdAssigner()
        count = 0
        rows = iter(reader)
        try:
            for where, row in rows:
                if inputs.limit is not None and count >= inputs.limit:
                    reader.stop()  # the rest is hashed, so the summary names the file as a whole
                    break
                if not isinstance(row, dict):
                    raise BadInput(where, f"expected a JSON object, got {kind_of(row)}")
                try:
                    row = map_fields(row, inputs.fields)
                    if self.format is None:  # known from the first row on, to a reader that acts on it as it goes
                        self.format = detect_format(row)
                    fields = to_contract(row, self.format)
                except FormatError as err:
                    raise BadInput(where, str(err)) from None
                count += 1
                yield where, record_from_fields(where, fields, assign_id)
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()

    def _name_duplicate(self, sha256: str | None) -> None:
        """BadInput at the first repeated id, naming where it first was (hashes only said one may exist)."""
        seen: dict[str, Location] = {}
        for where, record in InputPass(self.source, sha256=sha256):
            if record.id in seen:
                raise BadInput(where, f"duplicate id '{record.id}' (first at {seen[record.id]})")
            seen[record.id] = where


@dataclass
class LoadedInput:
    """An input read whole into memory: for small inputs (tests, plots, a dozen eval prompts), never a stage's
    main input."""

    summary: InputSummary
    records: list[Record]
    locations: list[Location]

    @property
    def spec(self) -> str:
        """Where it was read from."""
        return self.summary.spec

    @property
    def format(self) -> str:
        """The format its rows were in."""
        return self.summary.format

    @property
    def sha256(self) -> str | None:
        """The hash of the bytes its records came from."""
        return self.summary.sha256

    @property
    def count(self) -> int:
        """How many records it holds."""
        return len(self.records)


def load_records(spec: str | Path, inputs: InputOptions = InputOptions()) -> LoadedInput:
    """Every record of a small input, in memory; BadInput on the first bad row."""
    rows = InputFile(spec, inputs).read()
    locations, records = [], []
    for where, record in rows:
        locations.append(where)
        records.append(record)
    return LoadedInput(rows.summary, records, locations)


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
