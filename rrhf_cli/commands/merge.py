"""`rrhf merge`: parse options and call the merge step of the sample stage."""

from __future__ import annotations

from typing import Annotated

import typer

from rrhf_cli.options import OutputOpt, command
from stages.contract.formats import InputOptions
from stages.sample.merge import MergeConfig, run_merge

InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Sample or scored files (.jsonl, .json, .csv, .parquet, hf:NAME[:CONFIG][:SPLIT]).", metavar="INPUT"
    ),
]


@command(MergeConfig)
def merge_command(
    sources: InputsArg, output: OutputOpt, config: MergeConfig, inputs: InputOptions
) -> None:
    """Join sample or scored files by id: responses are concatenated, each file's own order kept.

    Records appear in order of first appearance; a response whose (text, source) pair an earlier file
    already gave is dropped (--no-dedupe keeps it); an id whose prompts differ between files is an error.

    Examples:

    \b
        rrhf merge policy.jsonl gpt4.jsonl -o samples.jsonl
        rrhf merge part0.jsonl part1.jsonl part2.jsonl part3.jsonl -o samples.jsonl
    """
    run_merge(sources, output, config, inputs)
