"""The sample stage: read prompts, collect k responses per prompt from one backend, write a samples file.

Steps: load and shard the prompts; gather responses carried from the input (and, with --append, the
existing output); open the journal; sample the prompts not yet journaled, batch by batch, in length order;
write the artifact, its meta and a list of the prompts that failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.core.console import log, progress
from stages.core.errors import BadInput, UsageError
from stages.core.formats import InputOptions
from stages.core.ids import derive_seed
from stages.core.inputs import LoadedInput, load_records
from stages.core.launch import Launch, current_launch
from stages.core.runs import BatchResult, Failure, StageRun, Work
from stages.core.schema import Record, Response, without_rank_fields
from stages.sample.backends import Sampler, SampleRequest, create_sampler
from stages.sample.config import SampleConfig
from stages.sample.registry import SAMPLERS
from stages.sample.sources import included_responses, join_by_id


def run_sample(
    source: str,
    output: Path,
    config: SampleConfig,
    inputs: InputOptions = InputOptions(),
    force: bool = False,
) -> dict[str, int]:
    """Sample k responses for every prompt of `source` (or of its shard) into `output`; returns the counts."""
    loaded = load_records(source, inputs)
    # Under torchrun each rank samples every world_size-th prompt; --shard splits the work by hand instead.
    launch = current_launch() if config.shard is None else Launch()
    if launch.parallel and config.append:
        raise UsageError("--append runs in one process; sample into a new file and join with `rrhf merge`")
    index, count = (launch.rank, launch.world_size) if launch.parallel else config.shard_of()
    records, locations = loaded.records[index::count], loaded.locations[index::count]
    if not records and not launch.parallel:
        raise BadInput(source, f"shard {config.shard} holds no prompt (the input has {len(loaded.records)})")
    _check_prompts(records, locations, config)
    carried = {r.id: _carried(r, where, config.include_field) for r, where in zip(records, locations, strict=True)}
    existing = load_records(output) if config.append and output.exists() else None
    if existing is not None:
        _check_same_prompts(existing, records, locations)
    if config.strategy == "sample" and config.temperature == 0 and config.k > 1:
        log.warning("sample: --temperature 0 decodes greedily, so the %d responses of a prompt will be equal", config.k)
    run = StageRun("sample", config, output, [loaded] + ([existing] if existing else []), force, launch,
                   appending=existing is not None)

    done = run.done()
    resumed = sum(1 for r in records if r.id in done)
    counts: Counter[str] = Counter()
    failures: list[Failure] = []
    if any(r.id not in done for r in records):
        try:
            sampler = create_sampler(config)
        except BaseException:
            if not done:  # nothing to resume: do not leave a journal behind a model that failed to load
                run.journal.remove()
            raise
        try:
            ordered = _length_order(sampler, records, config, counts)
            spec = SAMPLERS[config.backend]
            batch_size = config.batch_size or spec.batch_size
            with progress(len(records), "sample") as advance:
                work = _work(sampler, config)
                failures = run.batches(ordered, batch_size, work, advance, whole_batches=spec.batch_seeded).failures
        finally:
            sampler.close()

    sampled = [_with_responses(r, carried[r.id] + (done[r.id].responses if r.id in done else [])) for r in records]
    counts.update(
        prompts=len(records),
        resumed_prompts=resumed,
        prompts_sampled=sum(1 for r in records if r.id in done),
        responses_sampled=sum(len(done[r.id].responses) for r in records if r.id in done),
        responses_included=sum(len(c) for c in carried.values()),
        input_responses_dropped=sum(len(r.responses) for r in records)
        - sum(1 for r in records for x in r.responses if x.source in config.include_field),
        failed_prompts=len(failures),
    )
    run.report_failures(failures, "prompt(s) failed", config.allow_failures)
    final = sampled
    if existing is not None:
        final, joined = join_by_id([(existing.records, existing.locations), (sampled, locations)])
        counts.update(records_before=len(existing.records), duplicates_dropped=joined["duplicates_dropped"])
    meta = run.finish(final, dict(counts))
    totals = Counter(meta.counts) if meta else counts  # every rank's, on rank 0 of a parallel launch
    _log_summary(config, totals)
    return dict(totals)


def _work(sampler: Sampler, config: SampleConfig) -> Work:
    source = config.source_name

    def work(batch: list[Record], batch_ids: list[str]) -> BatchResult:
        requests = [SampleRequest(r.id, r.prompt, derive_seed(config.seed, r.id)) for r in batch]
        results = sampler.sample(requests, derive_seed(config.seed, *batch_ids))
        outcome = BatchResult(finished=[])
        for record, result in zip(batch, results, strict=True):
            if isinstance(result, list) and len(result) != config.k:
                result = Failure(error=f"{len(result)} of {config.k} responses came back")
            if isinstance(result, Failure):
                outcome.failures.append(result.at(record.id))
            else:
                outcome.finished.append(_with_responses(record, [Response(text=t, source=source) for t in result]))
        return outcome

    return work


def _with_responses(record: Record, responses: list[Response]) -> Record:
    return without_rank_fields(record.model_copy(update={"responses": responses}))


def _check_prompts(records: Sequence[Record], locations: Sequence[Any], config: SampleConfig) -> None:
    if config.backend == "openai" and config.endpoint == "completions":
        for record, where in zip(records, locations, strict=True):
            if not isinstance(record.prompt, str):
                raise BadInput(where, "a message prompt needs the chat endpoint (--endpoint chat or auto)")


def _check_same_prompts(existing: LoadedInput, records: Sequence[Record], locations: Sequence[Any]) -> None:
    # Checked before sampling, so a mismatch costs no generation.
    prompts = {r.id: r.prompt for r in existing.records}
    for record, where in zip(records, locations, strict=True):
        if record.id in prompts and prompts[record.id] != record.prompt:
            raise BadInput(where, f"id '{record.id}' is in {existing.spec} with a different prompt; cannot --append")


def _carried(record: Record, where: Any, names: Sequence[str]) -> list[Response]:
    try:
        return included_responses(record, names)
    except ValueError as err:
        raise BadInput(where, str(err)) from None


def _length_order(sampler: Sampler, records: list[Record], config: SampleConfig, counts: Counter[str]) -> list[Record]:
    """Records shortest prompt first, so a batch pads little; counts the prompts the backend cuts."""
    lengths = sampler.prompt_lengths([r.prompt for r in records])
    if lengths is None:
        return list(records)
    limit = sampler.prompt_limit
    if limit is not None:
        counts["prompts_truncated"] = sum(1 for n in lengths if n > limit)
        lengths = [min(n, limit) for n in lengths]
        if counts["prompts_truncated"] and limit != config.max_prompt_tokens:
            log.warning(
                "sample: %d prompts are longer than the model's context leaves room for (%d tokens with "
                "--max-new-tokens %d); their start is cut", counts["prompts_truncated"], limit, config.max_new_tokens
            )
    # Ties keep input order, so the batches (and so the seeds) are the same on every run.
    order = sorted(range(len(records)), key=lambda i: lengths[i])
    return [records[i] for i in order]


def _log_summary(config: SampleConfig, counts: Counter[str]) -> None:
    log.info(
        "sample: %d prompts, %d responses from '%s' (%s, %s), %d carried from the input; %d prompts cut to "
        "--max-prompt-tokens; %d failed",
        counts["prompts"],
        counts["responses_sampled"],
        config.source_name,
        config.backend,
        config.strategy,
        counts["responses_included"],
        counts["prompts_truncated"],
        counts["failed_prompts"],
    )
