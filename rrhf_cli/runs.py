"""Bookkeeping shared by every stage run: inputs, journal, failures, the finished artifact and its sidecar."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rrhf_cli.artifacts import LoadedInput, write_records
from rrhf_cli.config import OPERATIONAL, outcome_settings
from rrhf_cli.console import log
from rrhf_cli.errors import RrhfError
from rrhf_cli.journal import Failure, Journal
from rrhf_cli.launch import Group, Launch
from rrhf_cli.meta import Meta, fingerprint, input_info, now, stage_meta, write_meta
from rrhf_cli.schema import Record


class FailurePolicy(BaseModel):
    """What a stage does when some items still fail after their retries."""

    allow_failures: bool = Field(
        False,
        description="Write OUTPUT and exit 0 even if some items failed after their retries (they are listed in "
        "OUTPUT.failed.jsonl); by default the run exits 1 and a rerun retries only them.",
        json_schema_extra=OPERATIONAL,
    )


def failed_path(output: Path) -> Path:
    """`OUTPUT.failed.jsonl`: what a stage could not do in its last run, one JSON line each."""
    return output.with_name(output.name + ".failed.jsonl")


class StageRun:
    """One run of a stage writing `output` from `inputs` under `config`."""

    def __init__(
        self,
        stage: str,
        config: BaseModel,
        output: Path,
        inputs: Sequence[LoadedInput],
        force: bool = False,
        launch: Launch | None = None,
    ) -> None:
        """`launch`: a data-parallel launch whose ranks each run a share of the first input's records; each
        rank keeps its own journal and rank 0 writes the artifact from all shares."""
        self.stage, self.config, self.output, self.inputs = stage, config, output, list(inputs)
        self.started_at = now()
        self.launch = launch or Launch()
        self.group = Group(self.launch) if self.launch.parallel else None
        journaled = output.with_name(f"{output.name}.{self.launch.tag}") if self.group else output
        infos = [input_info(i) for i in inputs]
        self.journal = Journal(journaled, fingerprint(stage, outcome_settings(config), infos), force=force)

    def report_failures(self, failures: Sequence[Failure], what: str, allow: bool) -> None:
        """List `failures` in OUTPUT.failed.jsonl (or remove a stale list), log the first few, and unless `allow`
        stop the run with one line saying how to retry; `what` follows the count, e.g. "prompt(s) failed"."""
        if self.group is not None:
            failures = [f for share in self.group.everyone(list(failures)) for f in share]
        listing = failed_path(self.output)
        lead = self.launch.rank == 0
        if not failures:
            if lead:
                listing.unlink(missing_ok=True)
            return
        if lead:
            write_records(listing, (asdict(f) for f in failures))
        for failure in failures[:10] if lead else []:
            item = f"{failure.id} responses[{failure.response}]" if failure.response is not None else failure.id
            log.warning("%s: %s failed: %s", self.stage, item, failure.error)
        if lead and len(failures) > 10:
            log.warning("%s: ... and %d more failures", self.stage, len(failures) - 10)
        if not allow:
            raise RrhfError(
                f"{len(failures)} {what} (listed in {listing}); the others are kept in {self.journal.path}: "
                "run the same command again to retry only the failed ones, or add --allow-failures to write "
                "the output without them"
            )

    def finish(self, records: Iterable[Record | dict[str, Any]], counts: dict[str, int] | None = None) -> Meta | None:
        """Write the artifact and its sidecar atomically, then drop the journal. In a data-parallel launch rank 0
        writes every rank's records, in the first input's order, with the counts summed; it returns None on the
        other ranks."""
        if self.group is None:
            meta = self._write(records, counts or {})
            self.journal.remove()
            return meta
        rows = [r.to_json_dict() if isinstance(r, Record) else r for r in records]
        shares = self.group.gather((rows, counts or {}))
        meta = None
        if shares is not None:
            by_id = {row["id"]: row for share, _ in shares for row in share}
            total: Counter[str] = Counter()
            for _, share_counts in shares:
                total.update(share_counts)
            meta = self._write([by_id[r.id] for r in self.inputs[0].records if r.id in by_id], dict(total))
        self.group.barrier()  # the artifact is written: every rank may drop its journal
        self.journal.remove()
        return meta

    def _write(self, records: Iterable[Record | dict[str, Any]], counts: dict[str, int]) -> Meta:
        written = write_records(self.output, records)
        meta = stage_meta(self.stage, self.config, self.inputs, {"records": written, **counts}, self.started_at)
        meta.world_size = self.launch.world_size
        write_meta(self.output, meta)
        return meta
