"""The score stage: read samples, score every response in journaled batches, write the scored file."""

from __future__ import annotations

from pathlib import Path

from rrhf_cli.artifacts import dumps, load_records
from rrhf_cli.console import log, progress
from rrhf_cli.errors import RrhfError, UsageError
from rrhf_cli.journal import run_batches
from rrhf_cli.runs import StageRun, failed_path
from rrhf_cli.schema import Record
from stages.score.apply import apply_scores
from stages.score.backends import make_scorer
from stages.score.config import ScoreConfig


def run_score(
    source: str, output: Path, config: ScoreConfig, input_format: str = "auto", force: bool = False
) -> dict[str, int]:
    """Score every response of `source` into `output`; returns the counts also written to the meta."""
    loaded = load_records(source, input_format)
    if config.judge_template is not None and not config.judge_template.is_file():
        raise UsageError(f"--judge-template {config.judge_template}: no such file")
    where = dict(zip((r.id for r in loaded.records), loaded.locations, strict=True))
    run = StageRun("score", config, output, [loaded], force=force)
    scorer = make_scorer(config)

    def work(batch: list[Record]) -> list[Record]:
        values = scorer.score(batch, [where[r.id] for r in batch])
        return [
            apply_scores(record, vals, config.as_name, config.primary, where[record.id])
            for record, vals in zip(batch, values, strict=True)
        ]

    total = sum(len(r.responses) for r in loaded.records)
    with progress(len(loaded.records), "score") as advance:
        records = run_batches(loaded.records, config.batch_size, work, run.journal, advance)
    failed = [(r, i) for r in records for i, resp in enumerate(r.responses) if "score_error" in resp.extra]
    counts = {"responses": total, "scored": total - len(failed), "failed": len(failed)}
    failed_path(output).unlink(missing_ok=True)
    if failed and not config.allow_failures:
        _report_failures(output, failed)
        failed_ids = {r.id for r, _ in failed}
        run.journal.rewrite([r for r in records if r.id not in failed_ids])
        raise RrhfError(
            f"{len(failed)} of {total} responses could not be scored (listed in {failed_path(output)}); "
            "rerun the same command to retry them, or add --allow-failures to write them unscored"
        )
    if failed:
        _report_failures(output, failed)
        log.warning("score: %d of %d responses could not be scored; written without a score", len(failed), total)
    run.finish(records, counts)
    log.info("score: %d responses of %d prompts scored with %s", counts["scored"], len(records), config.backend)
    return counts


def _report_failures(output: Path, failed: list[tuple[Record, int]]) -> None:
    lines = []
    for record, index in failed:
        response = record.responses[index].extra
        lines.append(dumps({"id": record.id, "response": index, "error": response.get("score_error"),
                            "raw": response.get("judge_raw")}))
    failed_path(output).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
