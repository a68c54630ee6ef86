"""`rrhf merge`: join sample or scored files by id into one candidate set."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile
from stages.contract.schema import Record
from stages.runtime.config import setting
from stages.runtime.console import log
from stages.runtime.runs import StageRun
from stages.sample.join import join_files


class MergeConfig(BaseModel):
    """Settings of `rrhf merge`."""

    dedupe: bool = setting(True, description="Drop a response whose (text, source) pair an earlier file already gave.")


def run_merge(
    sources: list[str], output: Path, config: MergeConfig, inputs: InputOptions = InputOptions()
) -> dict[str, int]:
    """Join every input by id into `output`, streaming; returns the counts also written to the meta."""
    streams = [InputFile(source, inputs).read() for source in sources]  # hashed as they stream
    run = StageRun("merge", config, output, streams)
    joined: Counter[str] = Counter()
    counts: dict[str, int] = {}

    def rows() -> Iterator[Record]:
        responses = 0
        for record in join_files(streams, output.parent, joined, dedupe=config.dedupe):
            responses += len(record.responses)
            yield record
        counts.update(
            inputs=len(streams),
            records_in=sum(s.summary.count for s in streams),  # every pass has ended: join_files read all
            records_joined=joined["records_joined"],
            responses=responses,
            duplicates_dropped=joined["duplicates_dropped"],
        )

    meta = run.finish(rows(), counts)
    log.info(
        "merge: %d files, %d records in, %d out (%d joined by id), %d responses; %d duplicate responses dropped",
        counts["inputs"],
        counts["records_in"],
        meta.counts["records"] if meta else 0,
        counts["records_joined"],
        counts["responses"],
        counts["duplicates_dropped"],
    )
    return counts
