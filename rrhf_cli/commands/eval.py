"""`rrhf eval`: parse options and call the eval stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrhf_cli.options import ForceOpt, InputArg, JsonOpt, command
from stages.contract.formats import InputOptions
from stages.eval.config import EvalConfig

EvalDirOpt = Annotated[
    Path, typer.Option("-o", "--output", help="Folder for the samples, the scored files and report.json.")
]


@command(EvalConfig)
def eval_command(
    source: InputArg,
    output: EvalDirOpt,
    config: EvalConfig,
    inputs: InputOptions,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Evaluate a model on prompts: mean reward, win rate over a baseline, perplexity of reference responses.

    Samples with the sample stage and scores with any scorer; when the prompts carry responses
    (for preference data, the chosen one) their perplexity under each model is reported too.

    Examples:

    \b
        rrhf eval heldout.jsonl -o eval/ --model out/ --baseline base/ --scorer reward-model --scorer-model rm/
        rrhf eval hh-test.jsonl -o eval/ --model out/ --scorer python --fn rewards.py:concise -k 4
    """
    from stages.eval.run import run_eval
    from stages.eval.show import show_report

    show_report(run_eval(source, output, config, inputs, force), json_output)
