"""The standard streams in the states a shell can leave them: a reader that leaves early, closed stdout or stderr,
and a locale whose encoding cannot spell the data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(**changes: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **changes}
    env.pop("PYTHONIOENCODING", None)
    return env


def _in_bash(redirect: str, *args: str, **changes: str) -> subprocess.CompletedProcess:
    """`rrhf ARGS` started by bash with `redirect` applied (`>&-`, `2>&-`), output captured where left open."""
    command = ["bash", "-c", f'exec "$@" {redirect}', "bash", sys.executable, "-m", "rrhf_cli", *args]
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture
def many_sources(tmp_path: Path) -> Path:
    """An artifact whose summary is far larger than a pipe holds (one source per record)."""
    path = tmp_path / "many.jsonl"
    rows = ({"id": str(i), "prompt": "p", "responses": [{"text": "x", "source": f"model-{i}"}]} for i in range(5000))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("as_json", [True, False])
def test_a_reader_that_leaves_early_ends_the_command_quietly(many_sources, as_json):
    args = [sys.executable, "-m", "rrhf_cli", "inspect", str(many_sources), *(["--json"] if as_json else [])]
    process = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first write: `| head -0`
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141, stderr
    assert stderr == b""


def test_a_closed_stdout_is_an_error_for_a_command_that_prints(tmp_path):
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a"}\n')
    result = _in_bash(">&-", "inspect", str(data), "--json")
    assert result.returncode == 1
    assert result.stderr == "rrhf: error: standard output: closed, so the result had nowhere to go\n"


def test_a_closed_stderr_loses_only_the_messages(tmp_path):
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a"}\n')
    result = _in_bash("2>&-", "inspect", str(data), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["summary"]["records"] == 1
    assert _in_bash("2>&-", "inspect", str(tmp_path / "missing.jsonl")).returncode == 2


def test_a_locale_that_cannot_spell_the_data_escapes_it(tmp_path):
    data = tmp_path / "f.jsonl"
    data.write_text(json.dumps({"id": "1", "prompt": "p", "responses": [{"text": "x", "source": "日本"}]}) + "\n",
                    encoding="utf-8")
    command = [sys.executable, "-m", "rrhf_cli", "inspect", str(data)]
    result = subprocess.run(command, env=_env(LC_ALL="C", PYTHONUTF8="0"), capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert b"\\u65e5\\u672c" in result.stdout and b"Traceback" not in result.stderr
