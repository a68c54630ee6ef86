"""The `rrhf` command: wires the commands and maps known failures to one line and an exit status."""

from __future__ import annotations

import signal
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from rrhf_cli.options import debug_enabled
from stages.contract import __version__
from stages.contract.errors import RrhfError, exit_status, interrupted, os_error_message, raise_terminated
from stages.runtime.console import PIPE_EXIT, drop_stdout, flush_stdout, guard_streams, stdout_reader_gone
from stages.runtime.launch import current_launch, exit_past_teardown, peer_ended
from stages.runtime.memory import memory_kind, out_of_memory
from stages.runtime.outputs import unlock_all


class RrhfGroup(TyperGroup):
    """Turns RrhfError (and OS errors such as a full disk) into one line unless --debug is given."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (RrhfError, OSError) as err:
            if isinstance(err, BrokenPipeError) and stdout_reader_gone():  # `rrhf inspect f | head -1`: no error
                drop_stdout()
                raise typer.Exit(PIPE_EXIT) from None
            if debug_enabled(ctx):
                raise
            message = os_error_message(err) if isinstance(err, OSError) else str(err)
            typer.echo(f"rrhf: error: {message}", err=True)
            raise typer.Exit(exit_status(err)) from None
        except (MemoryError, RuntimeError) as err:  # out of memory outside a stage's batches (loading a model, say)
            kind = memory_kind(err)
            stage = ctx.invoked_subcommand or "rrhf"
            line = str(out_of_memory(stage, kind)) if kind else peer_ended(err, current_launch())
            if line is None or debug_enabled(ctx):
                raise
            typer.echo(f"rrhf: error: {line}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as err:  # outside a stage's batches (loading a model, say): nothing to keep
            stopped = interrupted(err)
            typer.echo(f"rrhf: {stopped}", err=True)
            raise typer.Exit(stopped.exit_code) from None
        finally:
            unlock_all()  # a command that ended, well or not, writes nothing more


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
    # The command functions, not their modules: `eval` and `inspect` would shadow a builtin and a stdlib module.
    from rrhf_cli.commands.eval import eval_command
    from rrhf_cli.commands.inspect import inspect_command
    from rrhf_cli.commands.merge import merge_command
    from rrhf_cli.commands.plot import plot_command
    from rrhf_cli.commands.rank import rank_command
    from rrhf_cli.commands.sample import sample_command
    from rrhf_cli.commands.score import score_command
    from rrhf_cli.commands.train import train_command
    from rrhf_cli.commands.view import view_command

    for name, command in (
        ("sample", sample_command), ("score", score_command), ("rank", rank_command), ("train", train_command),
        ("eval", eval_command), ("plot", plot_command), ("merge", merge_command), ("inspect", inspect_command),
        ("view", view_command),
    ):
        app.command(name, cls=RrhfCommand)(command)
    from rrhf_cli.commands.cache import cache_clean_command, cache_ls_command

    cache = new_app(name="cache", help="The prepared training data kept between runs: list it, or clean it.")
    cache.command("ls", cls=RrhfCommand)(cache_ls_command)
    cache.command("clean", cls=RrhfCommand)(cache_clean_command)
    app.add_typer(cache)


_register()


def main() -> None:
    """Console-script entry point."""
    guard_streams()
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        app()
    except SystemExit as end:
        status = end.code
    else:
        status = 0
    status = status if flush_stdout() else PIPE_EXIT
    exit_past_teardown(status if isinstance(status, int) else 0 if status is None else 1)  # a launch's rank only
    raise SystemExit(status)
