"""`rrhf score --scorer python` on real files: scores, refusals, timeouts, signals, and a killed run resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stages.runtime.journal import partial_path
from tests.conftest import read_jsonl, sigint_default

REWARDS = r"""
import math

def length(prompt, response):
    return len(response)

def boom(prompt, response):
    if response == "hi":
        raise ValueError("no short answers")
    return 1.0

def nan(prompt, response):
    return math.nan

def exits(prompt, response):
    import sys
    if response == "hi":
        sys.exit(0)
    return 1.0

def interrupts(prompt, response):
    raise KeyboardInterrupt

def numeric(prompt, response):
    import numpy, torch
    kinds = {"hello there": numpy.float32(0.5), "hi": torch.tensor(2.0), "go away": numpy.int64(-3),
             "apple": torch.tensor(1, dtype=torch.int32), "a red apple from the orchard": numpy.array(4.25)}
    return kinds[response]

def bad(prompt, response):
    import os, numpy, torch
    return eval(os.environ["BAD_VALUE"])

def hangs(prompt, response):
    import time
    if response == "hi":
        time.sleep(3)
    return float(len(response))

def forever(prompt, response):
    import time
    while response == "hi":
        time.sleep(0.1)
    return 1.0

def rewrites(prompt, response):
    import os
    path, how = os.environ["REWRITE_INPUT"], os.environ["REWRITE_HOW"]
    if response == "apple" and not os.path.exists(path + ".changed"):  # the second record, once
        open(path + ".changed", "w").close()
        data = open(path, "rb").read()
        changed = {"rewritten": data.replace(b"hello", b"HELLO"), "truncated": data[: data.index(b"\n") + 1],
                   "appended": data + b'{"id": "late", "prompt": "p", "responses": ["x"]}\n'}[how]
        with open(path, "r+b") as handle:
            handle.truncate(0)
            handle.write(changed)
    return float(len(response))

def slow(prompt, response):
    import os, time
    with open(os.environ["CALLS_LOG"], "a") as log:
        log.write(prompt + "\n")
    time.sleep(0.2)
    return float(len(response))
"""


@pytest.fixture
def rewards(tmp_path):
    path = tmp_path / "rewards.py"
    path.write_text(REWARDS)
    return path


def test_python_function_scores_and_named_scores(samples, rewards, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    args = ["--scorer", "python", "--fn", f"{rewards}:length", "--as", "len"]
    assert cli("score", samples, "-o", out, *args).exit_code == 0
    rows = read_jsonl(out)
    assert [[r["score"] for r in row["responses"]] for row in rows] == [[11.0, 2.0, 7.0], [5.0, 28.0]]
    assert rows[0]["responses"][0]["scores"] == {"len": 11.0} and rows[0]["topic"] == "t"
    meta = json.loads((tmp_path / "scored.jsonl.meta.json").read_text())
    assert meta["config"]["scorer"] == "python" and meta["counts"]["scored"] == 5

    # A second scorer named "neg" keeps both; --primary len keeps `score` from the first.
    again = tmp_path / "again.jsonl"
    result = cli("score", out, "-o", again, "--scorer", "python", "--fn", f"{rewards}:length", "--as", "neg2",
                 "--primary", "len")
    assert result.exit_code == 0, result.stderr
    response = read_jsonl(again)[1]["responses"][1]
    assert response["scores"] == {"len": 28.0, "neg2": 28.0} and response["score"] == 28.0


def test_the_former_backend_flag_is_the_scorer_and_says_so(samples, rewards, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--backend", "python", "--fn", f"{rewards}:length", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == "rrhf: --backend is deprecated; use --scorer (kept until 0.2)"
    assert json.loads((tmp_path / "scored.jsonl.meta.json").read_text())["config"]["scorer"] == "python"


def test_the_former_engine_value_is_hf_and_says_so(samples, rewards, tmp_path, cli):
    result = cli("score", samples, "-o", tmp_path / "scored.jsonl", "--scorer", "python", "--fn",
                 f"{rewards}:length", "--engine", "transformers", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == "rrhf: --engine transformers is deprecated; use --engine hf (kept until 0.2)"


def test_python_errors_name_the_record(samples, rewards, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:boom")
    assert result.exit_code == 1
    assert f"{samples}:1: --fn {rewards}:boom raised ValueError: no short answers on responses[1]" in result.stderr
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:nan", "--force")
    assert result.exit_code == 1 and "returned nan for responses[0]; expected a finite number" in result.stderr
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:missing", "--force")
    assert result.exit_code == 2 and "has no function 'missing'" in result.stderr
    result = cli("score", samples, "-o", out, "--scorer", "python")
    assert result.exit_code == 2 and "--scorer python needs --fn" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("how", ["rewritten", "truncated", "appended"])
def test_an_input_changed_while_it_is_scored_is_refused_and_nothing_written(how, samples, rewards, tmp_path, cli,
                                                                           monkeypatch):
    an_hour_ago = samples.stat().st_mtime - 3600  # written before the run, as an input is
    os.utime(samples, (an_hour_ago, an_hour_ago))
    monkeypatch.setenv("REWRITE_INPUT", str(samples))
    monkeypatch.setenv("REWRITE_HOW", how)
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:rewrites", "--batch-size", "1",
                 "-q")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"rrhf: error: {samples}: changed while it was read")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "scored.jsonl.meta.json").exists()


def test_a_scorer_that_exits_fails_the_call_not_the_process(samples, rewards, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:exits")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rrhf: error: {samples}:1: --fn {rewards}:exits raised SystemExit: 0 on responses[1]"
    )
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:interrupts", "--force")
    assert result.exit_code == 1 and "raised KeyboardInterrupt on responses[0]" in result.stderr
    assert not out.exists()


def test_numpy_and_torch_scalars_are_scores(samples, rewards, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    result = cli("score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:numeric")
    assert result.exit_code == 0, result.stderr
    scores = [[r["score"] for r in row["responses"]] for row in read_jsonl(out)]
    assert scores == [[0.5, 2.0, -3.0], [1.0, 4.25]]
    assert all(type(v) is float for row in scores for v in row)


@pytest.mark.parametrize("value, shown", [
    ("True", "True"), ("numpy.bool_(True)", "np.True_"), ("torch.tensor(True)", "tensor(True)"),
    ("float('inf')", "inf"), ("numpy.float32('nan')", "np.float32(nan)"), ("torch.tensor(float('nan'))", "tensor(nan)"),
    ("'1.0'", "'1.0'"), ("[1.0]", "[1.0]"), ("torch.tensor([1.0])", "tensor([1.])"), ("10 ** 400", "1000"),
    ("1j", "1j"), ("None", "None"),
])
def test_values_that_are_no_finite_real_number_are_refused(value, shown, samples, rewards, tmp_path, cli,
                                                          monkeypatch):
    monkeypatch.setenv("BAD_VALUE", value)
    result = cli("score", samples, "-o", tmp_path / "scored.jsonl", "--scorer", "python", "--fn", f"{rewards}:bad")
    assert result.exit_code == 1
    assert f"--fn {rewards}:bad returned {shown}" in result.stderr
    assert "for responses[0]; expected a finite number" in result.stderr


def test_a_call_past_the_timeout_fails_that_response_and_the_run_finishes(samples, rewards, tmp_path, cli):
    out = tmp_path / "scored.jsonl"
    args = ["--scorer", "python", "--fn", f"{rewards}:hangs", "--timeout", "0.5"]
    started = time.monotonic()
    result = cli("score", samples, "-o", out, *args)
    assert time.monotonic() - started < 2.5, "waited for the hung call"
    assert result.exit_code == 1
    assert "1 of 5 responses could not be scored" in result.stderr
    [failed] = read_jsonl(tmp_path / "scored.jsonl.failed.jsonl")
    assert failed["id"] == "a" and failed["response"] == 1
    assert failed["error"] == f"--fn {rewards}:hangs took longer than --timeout 0.5 s"

    result = cli("score", samples, "-o", out, *args, "--allow-failures")
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r.get("score") for r in rows[0]["responses"]] == [11.0, None, 7.0]
    assert [r["score"] for r in rows[1]["responses"]] == [5.0, 28.0]


def test_a_call_that_never_returns_does_not_keep_the_process_alive(samples, rewards, tmp_path):
    out = tmp_path / "scored.jsonl"
    cmd = [sys.executable, "-m", "rrhf_cli", "score", str(samples), "-o", str(out), "--scorer", "python",
           "--fn", f"{rewards}:forever", "--timeout", "0.5", "--allow-failures", "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [r.get("score") for r in read_jsonl(out)[0]["responses"]] == [1.0, None, 1.0]


@pytest.mark.parametrize("signum, status, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_during_a_call_interrupts_the_run(signum, status, name, rewards, write_jsonl, tmp_path):
    # Calls run on a worker thread, so the user's own KeyboardInterrupt fails a call while a real one ends the run.
    many = write_jsonl("many.jsonl", [{"id": f"r{i}", "prompt": f"p{i}", "responses": [{"text": "x"}]}
                                      for i in range(40)])
    out = tmp_path / "scored.jsonl"
    cmd = [sys.executable, "-m", "rrhf_cli", "score", str(many), "-o", str(out), "--scorer", "python",
           "--fn", f"{rewards}:slow", "--batch-size", "4", "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "CALLS_LOG": str(tmp_path / "log")}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (partial_path(out).exists() and len(read_jsonl(partial_path(out))) > 4):
        time.sleep(0.05)
    time.sleep(0.1)  # inside a call
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert f"interrupted ({name})" in stderr and "raised" not in stderr


def test_without_a_timeout_a_call_may_run_long(samples, rewards, tmp_path):
    from stages.contract.schema import Record
    from stages.score.config import ScoreConfig
    from stages.score.python_fn import PythonScorer

    scorer = PythonScorer(ScoreConfig(scorer="python", fn=f"{rewards}:hangs"))
    assert scorer.timeout is None, "the API's default timeout is not the python backend's"
    record = Record.model_validate({"id": "a", "prompt": "p", "responses": [{"text": "hi"}]})
    assert scorer.score([record], ["here"]) == [[2.0]]
    assert PythonScorer(ScoreConfig(scorer="python", fn=f"{rewards}:hangs", timeout=5)).timeout == 5



def test_kill_and_resume(samples, rewards, write_jsonl, tmp_path):
    many = write_jsonl("many.jsonl", [{"id": f"r{i}", "prompt": f"p{i}", "responses": [{"text": "x" * i}]}
                                      for i in range(24)])
    out = tmp_path / "scored.jsonl"
    cmd = [sys.executable, "-m", "rrhf_cli", "score", str(many), "-o", str(out), "--scorer", "python",
           "--fn", f"{rewards}:slow", "--batch-size", "4", "-q"]
    calls = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "CALLS_LOG": str(calls)}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if partial_path(out).exists() and len(read_jsonl(partial_path(out))) >= 9:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(read_jsonl(partial_path(out))) - 1
    assert not out.exists() and 8 <= done < 24
    subprocess.run(cmd, env=env, check=True)
    assert 24 <= len(calls.read_text().split()) <= 24 + 4, "more than one batch was recomputed"
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(24)]
    assert [r["responses"][0]["score"] for r in rows] == [float(i) for i in range(24)]
