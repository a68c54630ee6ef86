"""`rrhf score`: parse options and call the score stage."""

from __future__ import annotations

from rrhf_cli.options import ForceOpt, InputArg, OutputOpt, command
from stages.contract.formats import InputOptions
from stages.score.config import ScoreConfig


@command(ScoreConfig)
def score_command(
    source: InputArg,
    output: OutputOpt,
    config: ScoreConfig,
    inputs: InputOptions,
    force: ForceOpt = False,
) -> None:
    """Give every response a finite `score`: a reward model, an LLM judge, a policy's log-prob or a function.

    `--as NAME` also keeps the value under `scores.NAME`, so scorers can run one after another on the same
    file; the last one (or `--primary NAME`) is `score`. A killed run resumes from its journal.

    Examples:

    \b
        rrhf score samples.jsonl -o scored.jsonl --scorer reward-model --model Skywork/Skywork-Reward-V2-Qwen3-0.6B
        rrhf score samples.jsonl -o scored.jsonl --scorer judge --model gpt-4o --judge-mode listwise --as gpt4
        rrhf score samples.jsonl -o scored.jsonl --scorer logprob --model out/
        rrhf score samples.jsonl -o scored.jsonl --scorer python --fn rewards.py:exact_match
    """
    from stages.score.run import run_score

    run_score(source, output, config, inputs, force)
