"""One protocol for every stage run: the journaled batch loop, the one failure type, the failure list, and the
finished artifact with its sidecar."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pydantic import BaseModel

from stages.contract.artifacts import Row, write_records
from stages.contract.errors import RrhfError, RunInterrupted, interrupted
from stages.contract.inputs import InputPass, InputSummary
from stages.contract.meta import (
    InputInfo,
    Meta,
    fingerprint,
    input_info,
    now,
    redact,
    run_identity,
    stage_meta,
    write_meta,
)
from stages.contract.readers import HF_PREFIX
from stages.contract.schema import Record
from stages.runtime.config import outcome_settings, setting
from stages.runtime.console import log
from stages.runtime.journal import Journal
from stages.runtime.launch import Group, Launch
from stages.runtime.memory import memory_kind, out_of_memory
from stages.runtime.outputs import check_output, lock_output, unlock_output
from stages.runtime.shares import collect_shares, drop_other_world_sizes, in_input_order, share_path


@dataclass(frozen=True)
class Failure:
    """What a stage could not do for one record or one of its responses: a row of OUTPUT.failed.jsonl. A backend
    gives the `error` (and what an outside model answered, `raw`); the run says where with `at`."""

    id: str = ""
    error: str = ""
    response: int | None = None  # the response's index, where the failure is one response's
    raw: str | None = None  # what an outside model answered, where that is the problem

    def at(self, record_id: str, response: int | None = None) -> Failure:
        """This failure, placed at a record (and one of its responses)."""
        return replace(self, id=record_id, response=response)


@dataclass
class BatchResult:
    """What `work` made of a batch: records to journal, failures, and failed records as far as they got (what
    `--allow-failures` writes in their place; a stage may have none)."""

    finished: list[Record]
    failures: list[Failure] = field(default_factory=list)
    unfinished: list[Record] = field(default_factory=list)


@dataclass
class Outcome:
    """What the batch loop left: the journal of every finished record, this run's failures, and the unfinished
    records by id (failures are few; the finished records stay on disk)."""

    journal: Journal
    failures: list[Failure]
    unfinished: dict[str, Record]

    def in_order(self, ids: Iterable[str]) -> Iterator[Row]:
        """The finished (else unfinished) version of each record, in the order of `ids`, streamed from the
        journal; records that failed with nothing to show are left out."""
        for record_id, line in self.journal.lines(ids):
            if line is not None:
                yield line
            elif record_id in self.unfinished:
                yield self.unfinished[record_id]


Work = Callable[[list[Record], list[str]], BatchResult]
"""A stage's work on one batch: (the records to do, the ids of the whole batch) -> what became of them."""


class FailurePolicy(BaseModel):
    """What a stage does when some items still fail after their retries."""

    allow_failures: bool = setting(
        False,
        description="Write OUTPUT and exit 0 even if some items failed after their retries (they are listed in "
        "OUTPUT.failed.jsonl); by default the run exits 1 and a rerun retries only them.",
        operational=True,
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
        inputs: Sequence[InputSummary | InputPass],
        force: bool = False,
        launch: Launch | None = None,
        appending: bool = False,
    ) -> None:
        """`inputs`: each one read whole before the run (its summary: the journal's fingerprint names its
        content), or a pass the run streams while it writes (a stage that keeps no journal), whose summary the
        meta takes once the rows are written. `launch`: a data-parallel launch whose ranks each run a share of the
        first input's records, which must then be a summary with its ids; each rank keeps its own journal and rank
        0 writes the artifact from all shares, in that order. `appending`: the output is also an input on purpose
        (`sample --append`). Refuses, before any work, an output that is an input or no file, and one that another
        run is writing (the lock is held until `finish`)."""
        self.stage, self.config, self.output, self.inputs = stage, config, output, list(inputs)
        self.started_at = now()
        specs = [i.spec if isinstance(i, InputSummary) else i.source.spec for i in self.inputs]
        self.launch = launch or Launch()
        first = self.inputs[0] if self.inputs else None
        self.order = first.ids if isinstance(first, InputSummary) else None
        if self.launch.parallel and self.order is None:
            raise ValueError("a data-parallel run needs its first input read whole, with its ids (keep_ids)")
        check_output(output, [] if appending else [s for s in specs if not s.startswith(HF_PREFIX)],
                     tag=self.launch.tag if self.launch.parallel else "")
        journaled = output.with_name(f"{output.name}.{self.launch.tag}") if self.launch.parallel else output
        self.locked = journaled
        lock_output(journaled)
        if self.launch.rank == 0:  # one rank clears what a launch of another size left; the others never see it
            said = drop_other_world_sizes(output, self.launch.world_size)
            if said is not None:
                log.warning(said)
        self.group = Group(self.launch) if self.launch.parallel else None
        infos = [_identity_info(i) for i in self.inputs]
        settings = outcome_settings(config)
        identity = run_identity(stage, settings, infos)  # stamps the files the settings name: once
        self.journal = Journal(journaled, fingerprint(identity), force=force, identity=redact(identity))

    def done(self) -> Journal:
        """The records a killed run of the same command already finished: `id in done`, `len(done)`."""
        return self.journal.load()

    def batches(
        self,
        ordered: Iterable[Record],
        batch_size: int,
        work: Work,
        advance: Callable[[int], None] = lambda n: None,
        whole_batches: bool = False,
        total: int | None = None,
    ) -> Outcome:
        """Apply `work` to the records not yet journaled, batch by batch, journaling each batch's finished records;
        `ordered` is streamed (`total` records, where it has no len()), so memory holds one batch.

        Failed records are left out of the journal, so running the same command again redoes exactly those.
        Batches are cut from the full order and `work` also gets all the batch's ids, so a stage can seed a batch
        from them and a resumed run draws what an uninterrupted one would; with `whole_batches` (one RNG per
        batch) a batch cut short by a kill is redone whole.
        """
        done = self.done()
        total = len(ordered) if total is None and isinstance(ordered, Sized) else total
        if len(done):
            log.info("%s: resuming from %s: %d of %d records already done", self.stage, self.journal.path, len(done),
                     total)
        advance(len(done))
        failures: list[Failure] = []
        unfinished: dict[str, Record] = {}
        records = iter(ordered)
        while batch := list(itertools.islice(records, batch_size)):
            missing = [r for r in batch if r.id not in done]
            if not missing:
                continue
            try:
                result = work(batch if whole_batches else missing, [r.id for r in batch])
            except (RunInterrupted, KeyboardInterrupt) as err:
                stopped = err if isinstance(err, RunInterrupted) else interrupted(err)
                raise RunInterrupted(f"{stopped}; {self._kept(done, total)}", stopped.exit_code) from None
            except Exception as err:
                if (kind := memory_kind(err)) is None:
                    raise
                raise out_of_memory(self.stage, kind, self._kept(done, total)) from None
            wanted = {r.id for r in missing}  # a whole batch's work may also return records done before
            finished = [r for r in result.finished if r.id in wanted]
            self.journal.append(finished)
            settled = {r.id for r in finished}
            failed = [f for f in result.failures if f.id in wanted and f.id not in settled]
            failures += failed
            unfinished.update((r.id, r) for r in result.unfinished if r.id in wanted and r.id not in settled)
            lost = wanted - settled - {f.id for f in failed}
            if lost:
                raise RuntimeError(f"batch work returned no record for id '{min(lost)}'")
            advance(len(missing))
        return Outcome(self.journal, failures, unfinished)

    def _kept(self, done: Journal, total: int | None) -> str:
        return (f"{len(done)} of {total} records are finished and kept in {self.journal.path}: run the same command "
                "again to continue")

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

    def finish(self, records: Iterable[Row], counts: dict[str, int] | None = None) -> Meta | None:
        """Write the artifact and its sidecar atomically, streaming `records`, then drop the journal; `counts` is
        read after the records are written, so a generator may fill it. In a data-parallel launch each rank
        writes its share to disk and rank 0 streams every share into the artifact, in the first input's order,
        with the counts summed; it returns None on the other ranks."""
        counts = {} if counts is None else counts
        if self.group is None:
            meta = self._write(records, counts)
            self.journal.remove()
            unlock_output(self.locked)
            return meta
        own = share_path(self.output, self.launch.tag)
        write_records(own, records)
        every_count = self.group.gather(counts)
        shares = collect_shares(self.group, self.output, own)
        meta = None
        if shares is not None and every_count is not None:
            total: Counter[str] = Counter()
            for share_counts in every_count:
                total.update(share_counts)
            assert self.order is not None  # a parallel run is refused without it, when it starts
            meta = self._write(in_input_order(shares, self.order), dict(total))
            for received in shares[1:]:
                if received.name.endswith(".received"):
                    received.unlink(missing_ok=True)
        self.group.barrier()  # the artifact is written: every rank may drop its share and journal
        own.unlink(missing_ok=True)
        self.journal.remove()
        unlock_output(self.locked)
        return meta

    def _write(self, records: Iterable[Row], counts: dict[str, int]) -> Meta:
        written = write_records(self.output, records)
        summaries = [i if isinstance(i, InputSummary) else i.summary for i in self.inputs]
        meta = stage_meta(self.stage, self.config, summaries, {"records": written, **counts}, self.started_at)
        meta.world_size = self.launch.world_size
        write_meta(self.output, meta)
        return meta


def _identity_info(source: InputSummary | InputPass) -> InputInfo:
    """An input as the run's fingerprint knows it: by what its pass read, or (a pass still to stream) by the hash
    it was told to expect, else its path."""
    if isinstance(source, InputSummary):
        return input_info(source)
    return InputInfo(path=source.source.spec, sha256=source.expected, options=source.source.options or None)
