"""`rrhf view`: parse options and call the view stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrhf_cli.options import command
from stages.contract.formats import InputOptions
from stages.runtime.console import log
from stages.view.config import ViewConfig

ArtifactsArg = Annotated[
    list[str],
    typer.Argument(help="Artifact files (samples, scored, ranked, pairs), training folders, eval folders.",
                   metavar="ARTIFACT"),
]
HtmlOpt = Annotated[Path, typer.Option("-o", "--output", help="HTML page to write.")]


@command(ViewConfig)
def view_command(artifacts: ArtifactsArg, output: HtmlOpt, config: ViewConfig, inputs: InputOptions) -> None:
    """Write one self-contained HTML page to read artifacts: prompt cards with every response, its source, score
    and rank, the chosen pairs, before/after across files, score histograms and training curves.

    The page needs no server and no network; open it in a browser. Several files are aligned by prompt id.

    Examples:

    \b
        rrhf view scored.jsonl -o scored.html
        rrhf view ranked.jsonl -o ranked.html
        rrhf view eval/ out/ -o before-after.html
        rrhf view round-1/scored.jsonl round-2/scored.jsonl -o rounds.html
    """
    from stages.view.run import run_view

    held = run_view(artifacts, output, config, inputs)
    log.info("view: %d prompts, %d responses from %d files in %s", held["prompts"], held["responses"], held["files"],
             output)
