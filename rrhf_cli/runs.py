"""Bookkeeping shared by every stage run: inputs, journal, the finished artifact and its sidecar."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rrhf_cli.artifacts import LoadedInput, write_records
from rrhf_cli.journal import Journal
from rrhf_cli.meta import Meta, fingerprint, input_info, now, stage_meta, write_meta
from rrhf_cli.schema import Record


def failed_path(output: Path) -> Path:
    """`OUTPUT.failed.jsonl`: what a stage could not do in its last run, one JSON line each."""
    return output.with_name(output.name + ".failed.jsonl")


class StageRun:
    """One run of a stage writing `output` from `inputs` under `config`."""

    def __init__(
        self, stage: str, config: BaseModel, output: Path, inputs: Sequence[LoadedInput], force: bool = False
    ) -> None:
        self.stage, self.config, self.output, self.inputs = stage, config, output, list(inputs)
        self.started_at = now()
        infos = [input_info(i) for i in inputs]
        self.journal = Journal(output, fingerprint(stage, _outcome_settings(config), infos), force=force)

    def finish(self, records: Iterable[Record | dict[str, Any]], counts: dict[str, int] | None = None) -> Meta:
        """Write the artifact and its sidecar atomically, then drop the journal."""
        written = write_records(self.output, records)
        meta = stage_meta(self.stage, self.config, self.inputs, {"records": written, **(counts or {})}, self.started_at)
        write_meta(self.output, meta)
        self.journal.remove()
        return meta


def _outcome_settings(config: BaseModel) -> dict[str, Any]:
    # Settings marked operational (concurrency, timeouts, failure policy) do not change finished records,
    # so a rerun that only changes them may resume the journal.
    operational = {
        name for name, field in type(config).model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("operational")
    }
    return {k: v for k, v in config.model_dump(mode="json").items() if k not in operational}
