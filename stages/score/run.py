"""The score stage: read samples, score every response in journaled batches, write the scored file."""

from __future__ import annotations

from pathlib import Path

from stages.core.artifacts import load_records
from stages.core.console import log, progress
from stages.core.formats import InputOptions
from stages.core.launch import current_launch
from stages.core.runs import BatchResult, Failure, StageRun
from stages.core.schema import Record
from stages.score.apply import apply_scores
from stages.score.backends import make_scorer
from stages.score.config import ScoreConfig


def run_score(
    source: str, output: Path, config: ScoreConfig, inputs: InputOptions = InputOptions(), force: bool = False
) -> dict[str, int]:
    """Score every response of `source` into `output`; returns the counts also written to the meta."""
    loaded = load_records(source, inputs)
    where = dict(zip((r.id for r in loaded.records), loaded.locations, strict=True))
    launch = current_launch()  # under torchrun each rank scores every world_size-th record
    records = loaded.records[launch.rank :: launch.world_size]
    run = StageRun("score", config, output, [loaded], force, launch)
    scorer = make_scorer(config)

    def work(batch: list[Record], batch_ids: list[str]) -> BatchResult:
        values = scorer.score(batch, [where[r.id] for r in batch])
        result = BatchResult(finished=[])
        for record, vals in zip(batch, values, strict=True):
            scored = apply_scores(record, vals, config.as_name, config.primary, where[record.id])
            failures = [
                value.at(record.id, index)
                for index, value in enumerate(vals)
                if isinstance(value, Failure)
            ]
            # A record with an unscored response is not journaled, so a rerun scores it again.
            (result.unfinished if failures else result.finished).append(scored)
            result.failures += failures
        return result

    total = sum(len(r.responses) for r in records)
    try:
        with progress(len(records), "score") as advance:
            outcome = run.batches(records, config.batch_size or 1, work, advance)
    finally:
        scorer.close()
    failed = len(outcome.failures)
    run.report_failures(outcome.failures, f"of {total} responses could not be scored", config.allow_failures)
    if failed:
        log.warning("score: %d of %d responses could not be scored; written without a score", failed, total)
    counts = {"responses": total, "scored": total - failed, "failed": failed}
    meta = run.finish(outcome.in_order(records), counts)
    counts = dict(meta.counts) if meta else counts  # every rank's, on rank 0 of a parallel launch
    prompts = counts.get("records", len(records))
    log.info("score: %d responses of %d prompts scored with %s", counts["scored"], prompts, config.backend)
    return counts
