"""One pydantic model gives a command its flags, its config-file keys and its meta."""

from typing import Literal

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from stages.contract.errors import UsageError
from stages.runtime.config import setting
from stages.runtime.resolve import load_config_file, resolve_config
from tests.cli.demo_app import run_demo


class DemoConfig(BaseModel):
    model: str = Field(description="Model folder.")
    k: int = setting(4, "Responses per prompt.", aliases=("-k",), ge=1)
    temperature: float = Field(1.0, ge=0, description="Sampling temperature.")
    strategy: Literal["sample", "beam"] = Field("sample", description="Decoding strategy.")
    bf16: bool = Field(False, description="Use bfloat16.")
    stop: list[str] = Field(default_factory=list, description="Stop strings.")


def _run(*args):
    return run_demo(DemoConfig, *args)


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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("model: m\nbatch-size: 2\nbatch_size: 3\n", "'batch-size' and 'batch_size' are the same setting; keep one"),
        ("model: m\nsection:\n  top-p: 1\n  top_p: 2\n", "'section.top-p' and 'section.top_p' are the same setting"),
        ("model: m\nk: 2\nk: 3\n", ":3: key 'k' is given twice (first on line 2)"),
    ],
)
def test_a_setting_given_twice_in_a_config_file_is_refused(tmp_path, text, problem):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    with pytest.raises(UsageError, match=f"^{config}") as refused:
        load_config_file(config)
    assert problem in str(refused.value)


def test_a_toml_setting_in_two_spellings_is_refused(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('max-length = 1\nmax_length = 2\n')
    with pytest.raises(UsageError, match="'max-length' and 'max_length' are the same setting"):
        load_config_file(config)


def test_a_config_file_names_files_from_its_own_folder(tmp_path, write_jsonl, monkeypatch):
    """`fn: rewards.py:score` in configs/score.yaml is configs/rewards.py, wherever rrhf runs; the meta names the
    config file."""
    from rrhf_cli.app import app
    from stages.contract.meta import read_meta
    from tests.conftest import read_jsonl

    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "rewards.py").write_text("def length(prompt, response):\n    return float(len(response))\n")
    config = folder / "score.yaml"
    config.write_text("scorer: python\nfn: rewards.py:length\n")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    samples = write_jsonl("samples.jsonl", [{"id": "1", "prompt": "p", "responses": [{"text": "abc"}]}])
    result = CliRunner().invoke(app, ["score", str(samples), "-o", "scored.jsonl", "--config", "../configs/score.yaml"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    meta = read_meta(elsewhere / "scored.jsonl")
    assert meta.config["fn"] == f"{folder}/rewards.py:length"
    assert meta.config_file == str(config)
    assert read_jsonl(elsewhere / "scored.jsonl")[0]["responses"][0]["score"] == 3.0
