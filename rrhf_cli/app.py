"""The `rrhf` command: wires the commands and maps known failures to one line and an exit status."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from rrhf_cli import __version__
from rrhf_cli.errors import RrhfError
from rrhf_cli.options import debug_enabled


class RrhfGroup(TyperGroup):
    """Turns RrhfError (and OS errors such as a full disk) into one line unless --debug is given."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (RrhfError, OSError) as err:
            if debug_enabled():
                raise
            typer.echo(f"rrhf: error: {err}", err=True)
            raise typer.Exit(err.exit_code if isinstance(err, RrhfError) else 1) from None


class RrhfCommand(TyperCommand):
    """Writes a required argument as INPUT in the usage line, where Typer writes {INPUT}."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [
            piece[1:].replace("}", "", 1) if piece.startswith("{") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


def new_app(**settings: Any) -> typer.Typer:
    """A Typer app with the settings every rrhf command group shares."""
    return typer.Typer(
        cls=RrhfGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        add_completion=False,
        rich_markup_mode=None,
        **settings,
    )


app = new_app(
    name="rrhf", help="Align a language model by ranking sampled responses (RRHF): sample, score, rank, train."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rrhf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Align a language model by ranking sampled responses (RRHF): sample, score, rank, train."""


def _register() -> None:
    from rrhf_cli.commands import eval, inspect, merge, plot, rank, sample, score, train

    app.command("sample", cls=RrhfCommand)(sample.sample_command)
    app.command("score", cls=RrhfCommand)(score.score_command)
    app.command("rank", cls=RrhfCommand)(rank.rank_command)
    app.command("train", cls=RrhfCommand)(train.train_command)
    app.command("eval", cls=RrhfCommand)(eval.eval_command)
    app.command("plot", cls=RrhfCommand)(plot.plot_command)
    app.command("merge", cls=RrhfCommand)(merge.merge_command)
    app.command("inspect", cls=RrhfCommand)(inspect.inspect_command)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
