"""One pydantic model gives a command its flags, its config-file keys and its meta."""

from typing import Literal

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from rrhf_cli.app import new_app
from rrhf_cli.options import command
from stages.contract.errors import UsageError
from stages.runtime.config import setting
from stages.runtime.resolve import load_config_file, resolve_config


class DemoConfig(BaseModel):
    model: str = Field(description="Model folder.")
    k: int = setting(4, "Responses per prompt.", aliases=("-k",), ge=1)
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    strategy: Literal["sample", "beam"] = Field("sample", description="Decoding strategy.")
    bf16: bool = Field(False, description="Use bfloat16.")
    stop: list[str] = Field(default_factory=list, description="Stop strings.")


def _app():
    app = new_app()

    @app.command("demo")
    @command(DemoConfig)
    def demo(config: DemoConfig) -> None:
        """Print the resolved config."""
        print(config.model_dump_json())

    @app.command("other")
    def other() -> None:
        """A second command so `demo` stays a subcommand."""

    return app


def _run(*args):
    return CliRunner().invoke(_app(), ["demo", *map(str, args)], catch_exceptions=False)


def test_flags_carry_the_model_help_and_defaults():
    result = _run("--help")
    assert result.exit_code == 0
    for text in (
        "--model",
        "Model folder. [required unless in --config]",
        "-k",
        "[default: 4]",
        "--bf16",
        "--no-bf16",
        "sample|beam",
        "--stop",
        "--config",
        "-q, --quiet",
        "--debug",
    ):
        assert text in result.stdout


def test_file_values_are_overridden_by_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: from-file\nk: 8\ntemperature: 0.5\n")
    result = _run("--config", config, "-k", "2", "--bf16", "--stop", "a", "--stop", "b")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        '{"model":"from-file","k":2,"temperature":0.5,"strategy":"sample","bf16":true,"stop":["a","b"]}'
    )


def test_toml_config_with_dashed_keys(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "m"\nstrategy = "beam"\n')
    assert load_config_file(config) == {"model": "m", "strategy": "beam"}
    assert '"strategy":"beam"' in _run("--config", config).stdout


def test_every_problem_is_reported_at_once(tmp_path):
    result = _run("-k", "0", "--temperature", "-1")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "--model is required" in line
    assert "--k: input should be greater than or equal to 1" in line
    assert "--temperature: input should be greater than or equal to 0" in line


def test_unknown_config_key_suggests_the_right_one(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: m\ntemprature: 0.3\n")
    result = _run("--config", config)
    assert result.exit_code == 2
    assert f"{config}: unknown key 'temprature' (did you mean 'temperature'?)" in result.stderr


def test_invalid_yaml_names_the_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: m\nk: [1\n")
    with pytest.raises(UsageError, match=r"run\.yaml:\d+: not valid YAML"):
        load_config_file(config)


def test_resolve_config_without_a_command():
    assert resolve_config(DemoConfig, {"model": "a", "k": 2}, {"k": 3}).k == 3
