"""An interrupted `make` followed by `make` loses no finished record and no checkpoint: the examples Makefile passes
--force, which continues a journal or checkpoints of the same run and starts over only when an upstream changed."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import sigint_default

ROOT = Path(__file__).resolve().parents[2]

SLOW_SCORER = """
import time
from pathlib import Path

def score(prompt, response):
    time.sleep(0.1)
    with (Path(__file__).parent / "calls.txt").open("a") as calls:
        calls.write("x\\n")
    return float(len(response))
"""


def _make(out: Path, scorer: Path) -> subprocess.Popen:
    settings = [
        "ROUNDS=1", "K=2", "MAX_NEW_TOKENS=4", f"OUT={out}",
        f"SCORE_ARGS=--scorer python --fn {scorer}:score --batch-size 2",
        "TRAIN_ARGS=--max-steps 60 --save-steps 5 --logging-steps 1 --lr 5e-3 --queries-per-batch 4",
    ]
    return subprocess.Popen(["make", "-C", str(ROOT / "examples"), "iterate", *settings], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_default)


def _interrupt_when(run: subprocess.Popen, ready: Callable[[], bool]) -> str:
    """Ctrl-C to the whole job (make and the stage it runs) once `ready()`; the job's stderr."""
    deadline = time.monotonic() + 300
    while not ready():
        assert run.poll() is None, "make ended before it could be interrupted:\n" + run.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode != 0, stderr
    return stderr


def test_make_after_an_interrupted_make_continues(tmp_path):
    out, scorer = tmp_path / "out", tmp_path / "slow.py"
    scorer.write_text(SLOW_SCORER)
    calls = tmp_path / "calls.txt"
    journal = out / "round-1" / "scored.jsonl.partial"

    def scored_lines() -> int:
        return journal.read_text().count("\n") if journal.exists() else 0

    _interrupt_when(_make(out, scorer), lambda: scored_lines() >= 5)  # the header and four scored records
    done_before = scored_lines() - 1
    policy = out / "round-1" / "policy"
    assert done_before >= 4
    _interrupt_when(_make(out, scorer), lambda: (policy / "checkpoint-10").is_dir())
    # Each response scored once, but for the batch the interruption cut short (2 records, 2 responses each).
    assert 128 <= calls.read_text().count("\n") <= 128 + 4
    logged = (policy / "metrics.jsonl").read_text().splitlines()[:10]

    last = _make(out, scorer)
    _, stderr = last.communicate(timeout=600)
    assert last.returncode == 0, stderr[-3000:]
    # Steps 1-10 were not trained again: their logged lines (with their timings) are the first run's.
    assert (policy / "metrics.jsonl").read_text().splitlines()[:10] == logged
    steps = [json.loads(line)["step"] for line in (policy / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))  # every step logged once, none lost with the interruption
    assert (policy / "meta.json").is_file()
