"""`torchrun --nproc_per_node 2 -m rrhf_cli score`: ranks split the records, rank 0 writes the file one process
writes (reward model and python scorer); a launch with a killed rank resumes per rank, losing and repeating
nothing."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from stages.runtime.journal import partial_path
from tests.conftest import read_jsonl, rrhf_process

SLOW = """
import os, time

def vowels(prompt, response):
    with open(os.environ["CALLS_LOG"], "a") as log:
        log.write(response + "\\n")
    time.sleep(float(os.environ.get("DELAY", "0")))
    letters = [c for c in response.lower() if c.isalpha()]
    return sum(c in "aeiou" for c in letters) / max(len(letters), 1)
"""


@pytest.fixture
def samples(write_jsonl):
    words = ["hello there", "apple", "go", "rock and roll", "blue sky", "no", "maybe", "one two three"]
    return write_jsonl("samples.jsonl", [
        {"id": f"r{i}", "prompt": f"Question {i}?", "responses": [
            {"text": f"{words[i % 8]} {i}", "source": "m"}, {"text": f"{words[(i + 3) % 8]} {i}", "source": "m"}]}
        for i in range(20)
    ])  # fmt: skip


def _worker(launcher: int, rank: int) -> int:
    """The pid of the launcher's worker process with the given rank (from /proc: parent pid and RANK)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank}")


def _scores(path):
    return {row["id"]: [r["score"] for r in row["responses"]] for row in read_jsonl(path)}


@pytest.mark.parametrize("backend", ["reward-model", "python"])
def test_two_ranks_write_the_file_one_process_writes(backend, tiny_models, samples, tmp_path):
    rewards = tmp_path / "rewards.py"
    rewards.write_text(SLOW)
    flags = ["--scorer", backend, "--batch-size", "3"]
    flags += ["--model", str(tiny_models.reward)] if backend == "reward-model" else ["--fn", f"{rewards}:vowels"]
    env = {"CALLS_LOG": str(tmp_path / "calls.log")}
    one = rrhf_process("score", samples, "-o", tmp_path / "one.jsonl", *flags, env=env)
    assert one.returncode == 0, one.stderr
    two = rrhf_process("score", samples, "-o", tmp_path / "two.jsonl", *flags, nproc=2, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    single, parallel = _scores(tmp_path / "one.jsonl"), _scores(tmp_path / "two.jsonl")
    assert list(parallel) == list(single)  # input order
    for rid, values in single.items():
        assert parallel[rid] == pytest.approx(values, abs=1e-5)
    meta = json.loads((tmp_path / "two.jsonl.meta.json").read_text())
    assert meta["world_size"] == 2 and meta["counts"] == {"records": 20, "responses": 40, "scored": 40, "failed": 0}


def test_a_killed_launch_resumes_per_rank(samples, tmp_path):
    rewards = tmp_path / "rewards.py"
    rewards.write_text(SLOW)
    calls, out = tmp_path / "calls.log", tmp_path / "scored.jsonl"
    args = ["score", samples, "-o", out, "--scorer", "python", "--fn", f"{rewards}:vowels", "--batch-size", "2"]
    journals = [partial_path(out.with_name(f"{out.name}.rank{r}-of-2")) for r in range(2)]
    proc = rrhf_process(*args, nproc=2, background=True, env={"CALLS_LOG": str(calls), "DELAY": "0.1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # header + two batches on each rank
        if all(j.exists() and len(j.read_text().splitlines()) >= 5 for j in journals):
            break
        time.sleep(0.05)
    os.kill(_worker(proc.pid, rank=1), signal.SIGKILL)  # torchrun then stops rank 0 and fails
    assert proc.wait(timeout=120) != 0
    assert not out.exists(), "a killed launch must not leave a finished-looking artifact"
    kept = sum(len(j.read_text().splitlines()) - 1 for j in journals)
    assert 8 <= kept < 20

    again = rrhf_process(*args, nproc=2, env={"CALLS_LOG": str(calls)})
    assert again.returncode == 0, again.stderr[-3000:]
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(20)]
    assert not any(j.exists() for j in journals)
    scored_twice = len(calls.read_text().splitlines()) - 40
    assert 0 <= scored_twice <= 2 * 2 * 2, "at most the batch each rank had in hand is scored again"


def test_two_ranks_without_a_shared_filesystem_write_the_same_file(samples, tmp_path):
    rewards = tmp_path / "rewards.py"
    rewards.write_text(SLOW)
    flags = ["--scorer", "python", "--fn", f"{rewards}:vowels", "--batch-size", "3"]
    env = {"CALLS_LOG": str(tmp_path / "calls.log")}
    one = rrhf_process("score", samples, "-o", tmp_path / "one.jsonl", *flags, env=env)
    assert one.returncode == 0, one.stderr
    # Ranks on nodes with local disks: rank 0 receives the other share in chunks instead of reading its file.
    two = rrhf_process("score", samples, "-o", tmp_path / "two.jsonl", *flags, nproc=2,
                       env={**env, "RRHF_SHARED_FS": "0"})
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("two.jsonl")) == [
        "two.jsonl", "two.jsonl.meta.json"]


FAILS_ON_RANK_1 = """
import os, time

def score(prompt, response):
    if os.environ["RANK"] == "1":
        time.sleep(2)  # rank 0 is done by then, waiting in the gather
        raise ValueError("rank one refuses")
    return 1.0
"""


def test_a_rank_that_fails_ends_the_others_in_one_line_each(samples, tmp_path):
    """The failing rank says why; the rank whose collective lost its peer says so, with no traceback."""
    rewards = tmp_path / "rewards.py"
    rewards.write_text(FAILS_ON_RANK_1)
    result = rrhf_process("score", samples, "-o", tmp_path / "s.jsonl", "--scorer", "python", "--fn",
                          f"{rewards}:score", nproc=2)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith(("rrhf: error:", "[rank"))]
    assert ours == [
        f"rrhf: error: {samples}:2: --fn {rewards}:score raised ValueError: rank one refuses on responses[0]",
        "rrhf: error: rank 0 of 2: another process of the launch ended (its own error says why), so this one "
        "stopped; what it finished is kept",
    ], result.stderr[-3000:]
