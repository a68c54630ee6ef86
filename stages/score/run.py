"""The score stage: read samples, score every response in journaled batches, write the scored file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from stages.contract.errors import Location
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile
from stages.contract.schema import Record
from stages.runtime.console import log, progress
from stages.runtime.launch import current_launch
from stages.runtime.runs import BatchResult, Failure, StageRun
from stages.score.apply import apply_scores
from stages.score.backends import make_scorer
from stages.score.config import ScoreConfig


def run_score(
    source: str, output: Path, config: ScoreConfig, inputs: InputOptions = InputOptions(), force: bool = False
) -> dict[str, int]:
    """Score every response of `source` into `output`; returns the counts also written to the meta."""
    stream = InputFile(source, inputs)
    scanned = stream.scan()  # the whole input is checked before any scoring
    launch = current_launch()  # under torchrun each rank scores every world_size-th record
    run = StageRun("score", config, output, [scanned], force, launch)
    done = run.done()
    where: dict[str, Location] = {}  # of the records in flight: a batch's are dropped once it is scored
    counts = {"responses": 0}

    def share() -> Iterator[Record]:
        # Read again, refused unless the bytes are those scanned: the journal and meta name that content.
        for index, (location, record) in enumerate(stream.read(sha256=scanned.sha256)):
            if index % launch.world_size == launch.rank:
                counts["responses"] += len(record.responses)
                if record.id not in done:
                    where[record.id] = location
                yield record

    scorer = make_scorer(config)

    def work(batch: list[Record], batch_ids: list[str]) -> BatchResult:
        locations = [where.pop(r.id) for r in batch]
        values = scorer.score(batch, locations)
        result = BatchResult(finished=[])
        for record, vals, location in zip(batch, values, locations, strict=True):
            scored = apply_scores(record, vals, config.as_name, config.primary, location, config.keep_score)
            failures = [
                value.at(record.id, index)
                for index, value in enumerate(vals)
                if isinstance(value, Failure)
            ]
            # A record with an unscored response is not journaled, so a rerun scores it again.
            (result.unfinished if failures else result.finished).append(scored)
            result.failures += failures
        return result

    ids = (scanned.ids or [])[launch.rank :: launch.world_size]
    try:
        with progress(len(ids), "score") as advance:
            outcome = run.batches(share(), config.batch_size or 1, work, advance, total=len(ids))
    finally:
        scorer.close()
    total = counts["responses"]
    failed = len(outcome.failures)
    run.report_failures(outcome.failures, f"of {total} responses could not be scored", config.allow_failures)
    if failed:
        log.warning("score: %d of %d responses could not be scored; written without a score", failed, total)
    counts = {"responses": total, "scored": total - failed, "failed": failed}
    meta = run.finish(outcome.in_order(ids), counts)
    counts = dict(meta.counts) if meta else counts  # every rank's, on rank 0 of a parallel launch
    prompts = counts.get("records", len(ids))
    log.info("score: %d responses of %d prompts scored with %s", counts["scored"], prompts, config.scorer)
    return counts
