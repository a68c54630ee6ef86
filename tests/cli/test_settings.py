"""The typed field helper: `setting(...)` gives a flag its spelling, metavar and role, `section(...)` expands a nested
settings model into flags (a nested model without it fails when the command is defined), and former names still
work for one release, with one warning line."""

import re
from typing import Literal

import pytest
from pydantic import BaseModel, ValidationInfo, field_validator
from typer.testing import CliRunner

from stages.runtime.config import cli_of, flag_of, is_operational, outcome_settings, plan_flags, section, setting
from stages.runtime.resolve import resolve_config
from tests.cli.demo_app import demo_app, run_demo


class Inner(BaseModel):
    model: str | None = setting(None, "The inner model.")
    engine: Literal["hf", "vllm"] = setting("hf", "Where it runs.", former_values=(("transformers", "hf"),))
    depth: int = setting(1, "How deep.", ge=1)
    secret: int = setting(0, "Set by the command.")

    @field_validator("depth")
    @classmethod
    def _depth_fits(cls, value: int, info: ValidationInfo) -> int:
        if value > 3 and info.data.get("engine") == "vllm":
            raise ValueError(f"above 3 needs {flag_of(cls, info, 'engine')} hf")
        return value


class Outer(BaseModel):
    model: str = setting(description="The model.")
    k: int = setting(2, "Responses.", flags=("-k",), ge=1)
    stop: list[str] = setting(description="Stop strings.", default_factory=list, metavar="STRING")
    workers: int = setting(4, "Workers at once.", operational=True)
    engine: str = setting("hf", "Where the model runs.", deprecated=("backend",))
    inner: Inner = section("The inner settings.", prefix="inner-", keep=("depth",), hidden=("secret",),
                           deprecated=(("inner_backend", "engine"),))


def _run(*args):
    return run_demo(Outer, *args)


def test_flags_metavar_and_operational_come_from_the_typed_metadata():
    text = _run("--help").stdout
    assert "-k <int>" in text and "--k" not in text
    assert "--stop STRING" in text
    assert cli_of(Outer.model_fields["k"]).flags == ("-k",)
    assert is_operational(Outer.model_fields["workers"]) and not is_operational(Outer.model_fields["k"])
    config = Outer(model="m", inner=Inner())
    assert "workers" not in outcome_settings(config) and "k" in outcome_settings(config)


def test_a_section_expands_into_prefixed_flags_and_keeps_what_it_is_told_to():
    assert [f.label for f in plan_flags(Outer) if f.path[0] == "inner"] == [
        "--inner-model", "--inner-engine", "--depth"
    ]
    result = _run("--model", "m", "--inner-model", "rm", "--depth", "2", "--inner-engine", "vllm")
    assert result.exit_code == 0, result.stderr
    assert '"inner":{"model":"rm","engine":"vllm","depth":2,"secret":0}' in result.stdout
    help_text = _run("--help").stdout
    assert "--secret" not in help_text and "--inner-secret" not in help_text


def test_a_section_reads_its_own_part_of_a_config_file_and_errors_name_the_command_s_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: m\ninner:\n  engine: vllm\n  depth: 5\n")
    result = _run("--config", config)
    assert result.exit_code == 2
    assert "--depth: above 3 needs --inner-engine hf" in result.stderr
    config.write_text("model: m\ninner:\n  secret: 3\n")
    result = _run("--config", config)
    assert result.exit_code == 2 and "unknown key 'inner.secret'" in result.stderr


def test_a_nested_model_without_a_section_fails_when_the_command_is_defined():
    class Loose(BaseModel):
        inner: Inner = Inner()

    with pytest.raises(TypeError, match=r"Loose\.inner: a nested settings model needs section"):
        demo_app(Loose)


def test_two_settings_spelled_alike_fail_when_the_command_is_defined():
    class Twice(BaseModel):
        model: str = setting("m", "The model.")
        inner: Inner = section("Inner.", prefix="", hidden=("secret",))

    with pytest.raises(TypeError, match=r"--model would set both model and inner\.model"):
        demo_app(Twice)


def test_a_field_no_flag_can_carry_fails_unless_left_to_config_files():
    class Mapping(BaseModel):
        table: dict[str, int] = setting(description="A table.", default_factory=dict)

    with pytest.raises(TypeError, match=r"Mapping\.table: no flag can carry"):
        demo_app(Mapping)

    class FileOnly(BaseModel):
        table: dict[str, int] = setting(description="A table.", default_factory=dict, shown=False)

    assert "--table" not in CliRunner().invoke(demo_app(FileOnly), ["demo", "--help"]).stdout


def test_a_former_flag_works_and_says_so_in_one_line():
    result = _run("--model", "m", "--backend", "vllm")
    assert result.exit_code == 0, result.stderr
    assert '"engine":"vllm"' in result.stdout
    assert result.stderr.strip() == "rrhf: --backend is deprecated; use --engine (kept until 0.2)"
    help_text = _run("--help").stdout
    assert not re.search(r"^  --backend\b", help_text, re.M), "a former spelling has no entry of its own"
    assert "formerly --backend" in " ".join(help_text.split())
    result = _run("--model", "m", "--inner-backend", "vllm")
    assert '"engine":"vllm","depth"' in result.stdout
    assert result.stderr.strip() == "rrhf: --inner-backend is deprecated; use --inner-engine (kept until 0.2)"


def test_former_config_keys_and_values_work_and_say_so():
    said: list[str] = []
    config = resolve_config(Outer, {"model": "m", "backend": "vllm", "inner_backend": "transformers"}, {},
                            warn=said.append)
    assert config.engine == "vllm" and config.inner.engine == "hf"
    assert said == [
        "config key 'backend' is deprecated; use 'engine' (kept until 0.2)",
        "config key 'inner_backend' is deprecated; use 'inner: engine:' (kept until 0.2)",
        "--inner-engine transformers is deprecated; use --inner-engine hf (kept until 0.2)",
    ]
    result = _run("--model", "m", "--inner-engine", "transformers")
    assert result.exit_code == 0 and '"engine":"hf"' in result.stdout
    assert "--inner-engine transformers is deprecated; use --inner-engine hf" in result.stderr
