"""`rrhf sample --engine vllm` at a real round's load on real vLLM (the CPU build): 64 prompts, chat and plain,
k=4, seeded, more prompt tokens than one engine step takes (so vLLM would split prefills), and an engine killed
mid-run, also in a shell's background job. Before the CPU engine kept prefills whole, this load killed it ("CPU
Generator does not use offset")."""

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.conftest import read_jsonl, real_vllm, rrhf_process
from tests.engines.vllm_kill import (
    child_pids,
    ended_within,
    engine_core_pids,
    ignores_sigint,
    journaled,
    kill_engine_when,
    kill_mid_run_then_rerun,
)

K = 4
STEP_TOKENS = 4096  # vLLM's CPU default for a step's token budget (offline LLM)
FLAGS = ["--engine", "vllm", "-k", str(K), "--seed", "0", "--temperature", "0.9", "--max-new-tokens", "16",
         "--max-model-len", "256", "--gpu-memory-utilization", "0.3", "--batch-size", "16"]  # fmt: skip


def _overridden(flags: list[str], **values: object) -> list[str]:
    """`flags` with the value of each `--name` in `values` replaced (rather than the option given twice)."""
    out = list(flags)
    for name, value in values.items():
        out[out.index(f"--{name.replace('_', '-')}") + 1] = str(value)
    return out


# A run whose engine is killed must still be sampling when its first batch is journaled and the test gets to the
# kill, on a busy machine too: with FLAGS all 64 prompts take about a second, less than a starved test may need.
KILLED_FLAGS = _overridden(FLAGS, max_new_tokens=128, batch_size=8)


def _prompts(n: int = 64) -> list[dict]:
    rng = random.Random(0)
    words = "the model reads every word of a long prompt before it answers in a few short lines".split()
    rows = []
    for i in range(n):
        text = " ".join(rng.choices(words, k=rng.randint(30, 70)))
        rows.append({"id": f"p{i}", "prompt": [{"role": "user", "content": text}] if i % 2 else text})
    return rows


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """The prompts file."""
    prompts = tmp_path_factory.mktemp("vllm-load") / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in _prompts()))
    return prompts


@real_vllm
def test_a_round_of_seeded_prompts_gets_k_responses_each_and_the_same_file_twice(vllm_models, load, tmp_path, cli):
    tokenizer = AutoTokenizer.from_pretrained(vllm_models.policy)
    prompt_tokens = sum(len(tokenizer(r["prompt"] if isinstance(r["prompt"], str) else r["prompt"][0]["content"])
                            .input_ids) for r in _prompts())  # fmt: skip
    assert prompt_tokens * K > 2 * STEP_TOKENS, "the load must be more than an engine step takes"
    files = []
    for name in ("a.jsonl", "b.jsonl"):
        result = cli("sample", load, "-o", tmp_path / name, "--model", vllm_models.policy, *FLAGS)
        assert result.exit_code == 0, result.stderr
        files.append((tmp_path / name).read_text())
    rows = read_jsonl(tmp_path / "a.jsonl")
    assert [r["id"] for r in rows] == [p["id"] for p in _prompts()]
    assert all(len(r["responses"]) == K for r in rows)
    assert len({x["text"] for r in rows for x in r["responses"]}) > len(rows), "seeded sampling still varies"
    assert files[0] == files[1]


@real_vllm
def test_a_killed_engine_is_one_line_and_a_rerun_continues_to_the_uninterrupted_file(
    vllm_models, load, tmp_path, cli
):
    reference = tmp_path / "reference.jsonl"
    args = ["--model", vllm_models.policy, *KILLED_FLAGS]
    assert cli("sample", load, "-o", reference, *args).exit_code == 0
    out = tmp_path / "s.jsonl"
    kept = kill_mid_run_then_rerun(["sample", load, "-o", out, *args], out, 8)
    assert 8 <= kept < 64
    assert out.read_text() == reference.read_text()  # nothing lost, nothing duplicated, the same draws


@real_vllm
def test_a_background_job_whose_engine_is_killed_ends_in_seconds_with_one_line(vllm_models, load, tmp_path):
    # A shell's background job runs with SIGINT ignored (POSIX; so do nohup, setsid, systemd and batch schedulers):
    # noticing the dead engine must not depend on a signal reaching rrhf.
    out = tmp_path / "s.jsonl"
    journal = out.with_name(out.name + ".partial")
    rrhf = shlex.join([sys.executable, "-m", "rrhf_cli", "sample", str(load), "-o", str(out), "--model",
                       str(vllm_models.policy), *KILLED_FLAGS])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    shell = subprocess.Popen(["bash", "-c", f"{rrhf} & wait $!"], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def kill_the_engine() -> None:
        deadline = time.monotonic() + 240
        while not child_pids(shell.pid, b"rrhf_cli") and time.monotonic() < deadline:
            time.sleep(0.05)
        (job,) = child_pids(shell.pid, b"rrhf_cli")
        assert ignores_sigint(job), "the job runs with SIGINT ignored, as a background job does"
        kill_engine_when(shell, lambda: journaled(journal) >= 1, parent=job)  # the engine's child of rrhf, mid-sampling

    stderr = ended_within(shell, kill_the_engine)
    assert shell.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr and not out.exists()
    last = [line for line in stderr.splitlines() if line.startswith("rrhf:")][-1]
    assert last.startswith("rrhf: error: vLLM's engine stopped: its process EngineCore was killed (SIGKILL); "), last
    assert last.endswith(f"kept in {journal}: run the same command again to continue"), last


@real_vllm
def test_sigterm_while_the_engine_starts_ends_in_seconds_and_leaves_no_engine_process(vllm_models, load, tmp_path):
    # vLLM's start waits for its engine in one zmq poll of up to ten minutes that a signal handler's exception does
    # not end: a job stopped then must still end at once, as a stopped job does, and take its engine with it.
    out = tmp_path / "s.jsonl"
    proc = rrhf_process("sample", load, "-o", out, "--model", vllm_models.policy, *FLAGS, background=True,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    engines: list[int] = []

    def stop_the_start() -> None:
        deadline = time.monotonic() + 240
        while not engines and proc.poll() is None and time.monotonic() < deadline:
            engines.extend(engine_core_pids(proc.pid))
            time.sleep(0.05)
        assert engines, f"no engine process started (exit {proc.poll()})"
        proc.send_signal(signal.SIGTERM)  # the engine is still importing and loading: vLLM's start is waiting

    stderr = ended_within(proc, stop_the_start)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and not out.exists()
    assert [line for line in stderr.splitlines() if line.startswith("rrhf:")][-1] == "rrhf: interrupted (SIGTERM)"
    assert not any(Path(f"/proc/{pid}").exists() for pid in engines), "the engine process outlived the run"
