"""Every command's --help says what its flags take: choices listed, no Python type names, INPUT in the usage."""

import re

import pytest
import typer

from rrhf_cli.app import app
from stages.sample.registry import SAMPLERS
from stages.score.registry import SCORERS

# Every command, a group's as "group command" (rrhf cache ls).
COMMANDS = sorted(
    (f"{name} {sub}" if sub else name, leaf)
    for name, command in typer.main.get_command(app).commands.items()
    for sub, leaf in (getattr(command, "commands", {}).items() or [(None, command)])
)
NO_CHOICES = {"plot", "cache ls", "cache clean"}  # commands with no flag of listed choices
# Flags whose choices come from a registry of backends (a string checked by the config, not a click.Choice).
REGISTRY_FLAGS = {("sample", "--engine"): SAMPLERS, ("score", "--scorer"): SCORERS, ("eval", "--scorer"): SCORERS}
# Flags that also take a former value (checked by the config, so not a click.Choice either).
REGISTRY_FLAGS |= {("score", "--engine"): ("hf", "vllm"), ("eval", "--scorer-engine"): ("hf", "vllm")}


def _help(cli, name):
    result = cli(*name.split(), "--help")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _option_entry(text, flag):
    """The help entry of one option, its wrapped lines joined."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s+(-\w, )?{re.escape(flag)}\b", line))
    entry = [lines[start]]
    for line in lines[start + 1 :]:
        if re.match(r"\s+-", line) or not line.startswith("      "):
            break
        entry.append(line)
    return " ".join(" ".join(entry).split())


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_choice_flag_lists_its_choices(cli, name, command):
    text = _help(cli, name)
    checked = 0
    for param in command.params:
        if param.param_type_name != "option" or param.hidden:  # a former spelling, kept out of --help
            continue
        flag = max(param.opts, key=len)
        described = param.type_descriptor
        choices = list(described.choices or []) if described.is_choice else None
        choices = list(REGISTRY_FLAGS.get((name, flag), [])) or choices
        if not choices:
            continue
        entry = _option_entry(text, flag)
        missing = [c for c in choices if not re.search(rf"[<| ]{re.escape(str(c))}[>| ]", entry)]
        assert not missing, f"rrhf {name} {flag}: {missing} not in {entry!r}"
        checked += 1
    if name not in NO_CHOICES:
        assert checked, "every command but plot and cache has --input-format or a stage's choices"


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_help_shows_no_python_types_and_a_plain_usage_line(cli, name):
    text = _help(cli, name)
    usage = text.splitlines()[0]
    argument = "$" if name.startswith("cache ") else " [A-Z]+"  # the cache commands read no input
    assert "{" not in usage and re.match(rf"Usage: rrhf {name} \[OPTIONS\]{argument}", usage)
    assert "list[" not in text.split("Options:")[1]
    assert "-k, --k" not in text and "--as-name" not in text
    # Only -o/--output is required outright; a config file can supply every setting.
    options = " ".join(text.split("Options:")[1].split())
    assert options.count("[required]") == (1 if "-o, --output" in options else 0)


def test_specific_help_texts(cli):
    train = " ".join(_help(cli, "train").split())
    assert "flash_attention_2" in _option_entry(_help(cli, "train"), "--attn-implementation")
    assert "--force Start over where OUTDIR holds checkpoints of a run with other" in train and "journal" not in train
    assert "--model <str> Policy to fine-tune: a from_pretrained folder or hub name. [required unless in --config]" in (
        train
    )
    sample = _help(cli, "sample")
    assert _option_entry(sample, "--stop").startswith("--stop STRING")
    assert _option_entry(sample, "-k").startswith("-k <int>")
