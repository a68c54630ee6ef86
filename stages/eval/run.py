"""The eval stage: sample from the model (and the baseline) with the sample stage, score with the score stage,
and report mean reward, win rate and the perplexity of the references the prompts carry."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

from stages.contract.artifacts import write_json
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile, Row
from stages.contract.schema import Record, Response
from stages.eval.config import EvalConfig
from stages.eval.report import EvalReport, ModelReport, mean_reward, perplexity
from stages.report.paired import paired_difference, prompt_means, win_rate
from stages.runtime.console import log
from stages.sample.run import run_sample
from stages.score.run import run_score

REFERENCE_CHUNK = 256  # prompts whose references are scored at a time


def run_eval(
    source: str, outdir: Path, config: EvalConfig, inputs: InputOptions = InputOptions(), force: bool = False
) -> EvalReport:
    """Evaluate `config.model` (and `config.baseline`) on the prompts of `source`; writes OUTDIR/report.json."""
    prompts = InputFile(source, inputs)
    outdir.mkdir(parents=True, exist_ok=True)
    models = {"model": config.model, **({"baseline": config.baseline} if config.baseline else {})}
    scores: dict[str, dict[str, list[float]]] = {}
    reports: dict[str, ModelReport] = {}
    for label, name in models.items():
        samples, scored = outdir / f"samples-{label}.jsonl", outdir / f"scored-{label}.jsonl"
        run_sample(source, samples, config.sample_config(name, label), inputs, force=force)
        run_score(str(samples), scored, config.score_config(), force=force)
        scores[label] = {
            r.id: [x.score for x in r.responses if x.score is not None] for r in InputFile(scored).records()
        }
        read = prompts.read()
        reports[label] = ModelReport(
            model=name,
            mean_reward=mean_reward(scores[label]),
            responses=sum(len(v) for v in scores[label].values()),
            reference_perplexity=reference_perplexity(name, read, config),
        )
        count = read.summary.count  # the references streamed through the whole input
    ours = prompt_means(scores["model"])
    theirs = prompt_means(scores["baseline"]) if "baseline" in scores else None
    report = EvalReport(
        model=reports["model"],
        baseline=reports.get("baseline"),
        reward_over_baseline=None if theirs is None else paired_difference(ours, theirs),
        win_rate=None if theirs is None else win_rate(ours, theirs),
        prompts=count,
    )
    write_json(outdir / "report.json", report.model_dump(mode="json"))
    return report


def references(record: Record) -> list[Response]:
    """The reference responses a prompt carries: the chosen one of a preference pair, else all of them."""
    chosen = [r for r in record.responses if r.source == "chosen"]
    return chosen or list(record.responses)


def reference_perplexity(model_name: str, prompts: Iterable[Row], config: EvalConfig) -> float | None:
    """Token-weighted perplexity of the references under the model (response tokens and EOS), as the paper
    reports next to reward; None when the prompts carry no references. Prompts stream through in chunks."""
    from stages.lm.policy import PolicyLogprobs

    policy: PolicyLogprobs | None = None
    sums: list[float] = []
    lengths: list[int] = []
    with_references = (r.model_copy(update={"responses": references(r)}) for _, r in prompts if r.responses)
    while chunk := list(itertools.islice(with_references, REFERENCE_CHUNK)):
        policy = policy or PolicyLogprobs(model_name, config.score.max_length, config.batch_size, stage="eval")
        chunk_sums, chunk_lengths = policy.sums(chunk)
        sums += [s for per in chunk_sums for s in per]
        lengths += [n for per in chunk_lengths for n in per]
    if policy is None:
        return None
    value = perplexity(sums, lengths)
    log.info("eval: reference perplexity under %s: %.3f", model_name, value)
    return value
