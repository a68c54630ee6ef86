"""`rrhf merge`: join sample or scored files by id into one candidate set."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from stages.core.console import log
from stages.core.formats import InputOptions
from stages.core.inputs import load_records
from stages.core.runs import StageRun
from stages.sample.sources import join_by_id


class MergeConfig(BaseModel):
    """Settings of `rrhf merge`."""

    dedupe: bool = Field(True, description="Drop a response whose (text, source) pair an earlier file already gave.")


def run_merge(
    sources: list[str], output: Path, config: MergeConfig, inputs: InputOptions = InputOptions()
) -> dict[str, int]:
    """Join every input by id into `output`; returns the counts also written to the meta."""
    loaded = [load_records(source, inputs) for source in sources]
    run = StageRun("merge", config, output, loaded)
    records, joined = join_by_id([(i.records, i.locations) for i in loaded], dedupe=config.dedupe)
    counts = {
        "inputs": len(loaded),
        "records_in": sum(len(i.records) for i in loaded),
        "records_joined": joined["records_joined"],
        "responses": sum(len(r.responses) for r in records),
        "duplicates_dropped": joined["duplicates_dropped"],
    }
    run.finish(records, counts)
    log.info(
        "merge: %d files, %d records in, %d out (%d joined by id), %d responses; %d duplicate responses dropped",
        counts["inputs"],
        counts["records_in"],
        len(records),
        counts["records_joined"],
        counts["responses"],
        counts["duplicates_dropped"],
    )
    return counts
