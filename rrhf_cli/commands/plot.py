"""`rrhf plot`: parse options and draw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrhf_cli.options import command
from stages.runtime.console import log

TargetsArg = Annotated[
    list[str], typer.Argument(help="A training folder, or one or more scored files.", metavar="TARGET")
]
PngOpt = Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")]


@command()
def plot_command(targets: TargetsArg, output: PngOpt) -> None:
    """Draw training curves (loss, rank loss, SFT loss, rank accuracy) or reward histograms to a PNG.

    Examples:

    \b
        rrhf plot out/ -o curves.png
        rrhf plot before/scored-model.jsonl after/scored-model.jsonl -o rewards.png
        rrhf plot scored.jsonl -o by-source.png
    """
    from stages.plot.charts import plot

    drawn = plot(targets, output)
    log.info("plot: %s in %s", drawn, output)
