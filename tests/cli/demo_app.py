"""A throwaway app whose one command, `demo`, prints the config its flags and config file resolve to."""

from typing import Any

import typer
from pydantic import BaseModel
from typer.testing import CliRunner, Result

from rrhf_cli.app import new_app
from rrhf_cli.options import command


def demo_app(model: type[BaseModel]) -> typer.Typer:
    """An app with `demo` built from `model`, and a second command so `demo` stays a subcommand."""
    app = new_app()

    @app.command("demo")
    @command(model)
    def demo(config: Any) -> None:
        """Print the resolved config."""
        print(config.model_dump_json())

    @app.command("other")
    def other() -> None:
        """A second command so `demo` stays a subcommand."""

    return app


def run_demo(model: type[BaseModel], *args: object) -> Result:
    """Invoke `demo` built from `model` with `args`."""
    return CliRunner().invoke(demo_app(model), ["demo", *map(str, args)], catch_exceptions=False)
