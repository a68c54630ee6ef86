"""The sample stage: read prompts, collect k responses per prompt from one backend, write a samples file.

Steps: read and check the prompts, parking this share's on disk with the responses the input carries; check
them against the existing output (--append); open the journal; sample the prompts not yet journaled, batch by
batch, in length order; stream the artifact from the journal in input order (joined with the existing output
for --append), its meta and a list of the prompts that failed.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from stages.contract.artifacts import Row, json_line
from stages.contract.errors import BadInput, Location, UsageError, naming
from stages.contract.formats import InputOptions
from stages.contract.id_index import IdIndex, IdList
from stages.contract.ids import derive_seed
from stages.contract.inputs import InputFile, InputSummary
from stages.contract.meta import Meta
from stages.contract.schema import Record, Response, without_rank_fields
from stages.runtime.console import log, progress
from stages.runtime.launch import Launch, current_launch
from stages.runtime.runs import BatchResult, Failure, Outcome, StageRun, Work
from stages.sample.backends import Sampler, SampleRequest, create_sampler
from stages.sample.config import SampleConfig
from stages.sample.join import join_files
from stages.sample.registry import SAMPLERS
from stages.sample.sources import included_responses
from stages.sample.spool import RecordSpool

LENGTH_CHUNK = 1024  # prompts tokenised at a time to order them by length
CUT_WARNING = 0.5  # warn when more than this share of the sampled responses hit the token limit


def run_sample(
    source: str,
    output: Path,
    config: SampleConfig,
    inputs: InputOptions = InputOptions(),
    force: bool = False,
) -> dict[str, int]:
    """Sample k responses for every prompt of `source` (or of its shard) into `output`; returns the counts."""
    # Under torchrun each rank samples every world_size-th prompt; --shard splits the work by hand instead.
    launch = current_launch() if config.shard is None else Launch()
    if launch.parallel and config.append:
        raise UsageError("--append runs in one process; sample into a new file and join with `rrhf merge`")
    stream = InputFile(source, inputs)
    prompts = RecordSpool(output.parent)  # this share's prompts, with the responses carried from the input
    try:
        return _sample(stream, prompts, output, config, launch, force)
    finally:
        prompts.close()


def _sample(
    stream: InputFile, prompts: RecordSpool, output: Path, config: SampleConfig, launch: Launch, force: bool
) -> dict[str, int]:
    counts: Counter[str] = Counter()
    read, ids = _read_prompts(stream, prompts, config, launch, counts)
    existing = None
    if config.append and output.exists():
        existing = _check_same_prompts(InputFile(output), prompts, ids)
    if config.strategy == "sample" and config.temperature == 0 and config.k > 1:
        log.warning("sample: --temperature 0 decodes greedily, so the %d responses of a prompt will be equal", config.k)
    run = StageRun("sample", config, output, [read] + ([existing] if existing else []), force, launch,
                   appending=existing is not None)
    done = run.done()
    resumed = len(done)
    outcome = Outcome(run.journal, [], {})
    if any(i not in done for i in ids):
        try:
            sampler = create_sampler(config)
        except BaseException:
            if not done:  # nothing to resume: do not leave a journal behind a model that failed to load
                run.journal.remove()
            raise
        try:
            order = _length_order(sampler, prompts, config, counts)
            spec = SAMPLERS[config.engine]
            batch_size = config.batch_size or spec.batch_size
            with progress(len(ids), "sample") as advance:
                ordered = (prompts.get(i)[1] for i in order)
                outcome = run.batches(ordered, batch_size, _work(sampler, config), advance,
                                      whole_batches=spec.batch_seeded, total=len(ids))
        finally:
            sampler.close()
    counts.update(
        prompts=len(ids),
        resumed_prompts=resumed,
        prompts_sampled=len(done),
        responses_sampled=len(done) * config.k,  # a prompt is journaled with exactly k
        failed_prompts=len(outcome.failures),
    )
    run.report_failures(outcome.failures, "prompt(s) failed", config.allow_failures)
    rows = _counting_cut(outcome.in_order(ids), config.k, counts)
    if existing is None:
        meta = run.finish(rows, counts)  # filled as the rows stream
    else:
        meta = _finish_appended(run, existing, rows, output, counts)
    totals = Counter(meta.counts) if meta else counts  # every rank's, on rank 0 of a parallel launch
    _log_summary(config, totals)
    return dict(totals)


def _read_prompts(
    stream: InputFile, prompts: RecordSpool, config: SampleConfig, launch: Launch, counts: Counter[str]
) -> tuple[InputSummary, IdList]:
    """Check every prompt and park this share's on disk with the responses the input carries, in one pass;
    returns its summary (with every id: rank 0 writes the artifact in that order) and the share's ids in input
    order."""
    index, count = (launch.rank, launch.world_size) if launch.parallel else config.shard_of()
    rows = stream.read(keep_ids=True)
    for number, (where, record) in enumerate(rows):
        if number % count != index:
            continue
        _check_prompt(record, where, config)
        carried = _carried(record, where, config.include_field)
        counts["responses_included"] += len(carried)
        counts["input_responses_dropped"] += sum(1 for x in record.responses if x.source not in config.include_field)
        prompts.append(_with_responses(record, carried), where)
    read = rows.summary
    every = read.ids or IdList()
    if not len(prompts) and not launch.parallel:
        raise BadInput(stream.spec, f"shard {config.shard} holds no prompt (the input has {len(every)})")
    return read, every[index::count]


def _finish_appended(
    run: StageRun, existing: InputSummary, rows: Iterator[Row], output: Path, counts: Counter[str]
) -> Meta | None:
    """Write the existing output joined by id with the new samples (parked in a file beside it first)."""
    with tempfile.NamedTemporaryFile("w", dir=output.parent, prefix=f".{output.name}.", suffix=".new.jsonl",
                                     encoding="utf-8") as new:
        with naming(new.name):
            new.writelines(json_line(row) for row in rows)
            new.flush()
        counts["records_before"] = existing.count
        joined: Counter[str] = Counter()
        counts_out = dict(counts)
        # The output as it was checked, or refused: the meta names that content.
        before = InputFile(existing.spec).read(sha256=existing.sha256)
        merged = join_files([before, InputFile(new.name).read()], output.parent, joined)

        def rows_out() -> Iterator[Record]:
            yield from merged
            counts_out["duplicates_dropped"] = joined["duplicates_dropped"]

        return run.finish(rows_out(), counts_out)


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
                outcome.unfinished.append(record)  # with the input's responses alone, for --allow-failures
            else:
                sampled = [Response(text=c.text, source=source, finish_reason=c.finish_reason) for c in result]
                outcome.finished.append(record.model_copy(update={"responses": record.responses + sampled}))
        return outcome

    return work


def _counting_cut(rows: Iterator[Row], k: int, counts: Counter[str]) -> Iterator[Row]:
    """Stream `rows`, counting in `counts["responses_cut"]` the sampled responses the token limit cut: a sampled
    record's last k responses are this run's (journaled lines, resumed ones too); an unfinished record has none."""
    counts["responses_cut"] = 0
    for row in rows:
        if isinstance(row, str):
            sampled = orjson.loads(row)["responses"][-k:]
            counts["responses_cut"] += sum(1 for x in sampled if x.get("finish_reason") == "length")
        yield row


def _with_responses(record: Record, responses: list[Response]) -> Record:
    return without_rank_fields(record.model_copy(update={"responses": responses}))


def _check_prompt(record: Record, where: Location, config: SampleConfig) -> None:
    if config.engine == "openai" and config.endpoint == "completions" and not isinstance(record.prompt, str):
        raise BadInput(where, "a message prompt needs the chat endpoint (--endpoint chat or auto)")


def _check_same_prompts(existing: InputFile, prompts: RecordSpool, ids: IdList) -> InputSummary:
    """The existing output's summary, once none of its ids has another prompt than the input gives it (checked
    before sampling, so a mismatch costs no generation)."""
    index = IdIndex.positions(ids)
    rows = existing.read()
    for _, record in rows:
        for at in index.candidates(record.id):
            if ids[at] == record.id:
                where, mine = prompts.get(at)
                if mine.prompt != record.prompt:
                    raise BadInput(
                        where, f"id '{record.id}' is in {existing.spec} with a different prompt; cannot --append"
                    )
    return rows.summary


def _carried(record: Record, where: Any, names: Sequence[str]) -> list[Response]:
    try:
        return included_responses(record, names)
    except ValueError as err:
        raise BadInput(where, str(err)) from None


def _length_order(sampler: Sampler, prompts: RecordSpool, config: SampleConfig, counts: Counter[str]) -> list[int]:
    """Positions of the prompts, shortest first, so a batch pads little; counts the prompts the backend cuts.
    Lengths are taken a chunk of prompts at a time."""
    lengths: list[int] = []
    for start in range(0, len(prompts), LENGTH_CHUNK):
        chunk = [prompts.get(i)[1].prompt for i in range(start, min(start + LENGTH_CHUNK, len(prompts)))]
        measured = sampler.prompt_lengths(chunk)
        if measured is None:
            return list(range(len(prompts)))
        lengths += measured
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
    return sorted(range(len(lengths)), key=lengths.__getitem__)


def _log_summary(config: SampleConfig, counts: Counter[str]) -> None:
    cut, sampled = counts["responses_cut"], counts["responses_sampled"]
    if sampled and cut / sampled > CUT_WARNING:
        log.warning("sample: %d of %d responses reached --max-new-tokens %d and are cut (finish_reason \"length\"): "
                    "a larger --max-new-tokens gives whole answers", cut, sampled, config.max_new_tokens)
    log.info(
        "sample: %d prompts, %d responses from '%s' (%s, %s), %d carried from the input; %d prompts cut to "
        "--max-prompt-tokens; %d responses cut at --max-new-tokens; %d failed",
        counts["prompts"],
        counts["responses_sampled"],
        config.source_name,
        config.engine,
        config.strategy,
        counts["responses_included"],
        counts["prompts_truncated"],
        counts["responses_cut"],
        counts["failed_prompts"],
    )
