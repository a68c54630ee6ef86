"""`rrhf eval`: parse options and call the eval stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rrhf_cli.options import ForceOpt, InputArg, JsonOpt, command
from stages.contract.formats import InputOptions
from stages.eval.config import EvalConfig
from stages.runtime.console import output_console

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

    report = run_eval(source, output, config, inputs, force)
    if json_output:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    from rich.table import Table

    title = f"rrhf eval: {report.prompts} prompts"
    table = Table("", "mean reward", "responses", "reference perplexity", title=title, title_justify="left")
    for label, item in (("model", report.model), ("baseline", report.baseline)):
        if item is not None:
            ppl = "n/a" if item.reference_perplexity is None else f"{item.reference_perplexity:.3f}"
            table.add_row(f"{label}: {item.model}", f"{item.mean_reward:.4f}", str(item.responses), ppl)
    output_console().print(table)
    if report.win_rate is not None:
        output_console().print(f"win rate of the model over the baseline: {report.win_rate:.3f} (ties count half)")
