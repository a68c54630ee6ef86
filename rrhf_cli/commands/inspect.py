"""`rrhf inspect`: summarise any artifact or input file, with its meta sidecar."""

from __future__ import annotations

from rrhf_cli.options import InputArg, JsonOpt, command
from stages.contract.formats import InputOptions


@command()
def inspect_command(path: InputArg, inputs: InputOptions, json_output: JsonOpt = False) -> None:
    """Summarise an artifact: records, responses per prompt, sources, score statistics and its meta.

    A trained model folder shows its meta and its last logged metrics.

    Examples:

    \b
        rrhf inspect scored.jsonl
        rrhf inspect pairs.jsonl --json | jq .summary.pairs
        rrhf inspect hf:Anthropic/hh-rlhf:test
        rrhf inspect out/
    """
    from stages.report.inspect import inspect

    inspect(path, inputs, json_output)
