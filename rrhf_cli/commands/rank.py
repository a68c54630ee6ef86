"""`rrhf rank`: parse options and call the rank stage."""

from __future__ import annotations

from rrhf_cli.options import InputArg, OutputOpt, command
from stages.contract.formats import InputOptions
from stages.rank.config import RankConfig


@command(RankConfig)
def rank_command(
    source: InputArg, output: OutputOpt, config: RankConfig, inputs: InputOptions
) -> None:
    """Rank scored responses: sort each prompt's candidates best first and form preference pairs.

    Drops exact duplicate responses (keeping the higher score) and prompts with fewer than two
    distinct scores; the log and the meta count every drop and why.

    Examples:

    \b
        rrhf rank scored.jsonl -o ranked.jsonl
        rrhf rank scored.jsonl -o pairs.jsonl --format pairs --pairs best-vs-rest --min-margin 0.5
        rrhf rank scored.jsonl -o ranked.jsonl --normalize zscore --max-pairs-per-prompt 8 --seed 1
    """
    from stages.rank.run import run_rank

    run_rank(source, output, config, inputs)
