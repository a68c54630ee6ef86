"""A killed stage resumes from its journal without losing or duplicating records."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from stages.contract.artifacts import json_line
from stages.contract.errors import UsageError
from stages.contract.schema import Record, Response
from stages.runtime.journal import Journal, partial_path
from stages.runtime.runs import BatchResult, StageRun
from tests.conftest import read_jsonl


def _records(n):
    return [Record(id=f"r{i}", prompt=f"p{i}") for i in range(n)]


def _answer(batch):
    return [r.model_copy(update={"responses": [Response(text=r.prompt.upper(), source="t")]}) for r in batch]


class _Settings(BaseModel):
    k: int = 1


def test_resume_skips_journaled_batches_and_drops_a_torn_line(tmp_path):
    out = tmp_path / "out.jsonl"
    journal = StageRun("test", _Settings(), out, []).journal
    journal.load()
    journal.append(_answer(_records(4)[:2]))
    with partial_path(out).open("a") as handle:
        handle.write('{"id": "r2", "prompt": "p2", "respo')  # killed mid-write
    calls = []

    def work(batch, batch_ids):
        calls.append([r.id for r in batch])
        return BatchResult(finished=_answer(batch))

    records = _records(4)
    outcome = StageRun("test", _Settings(), out, []).batches(iter(records), 2, work, total=4)
    result = [Record.model_validate_json(json_line(row)) for row in outcome.in_order(r.id for r in records)]
    assert calls == [["r2", "r3"]]
    assert [r.id for r in result] == ["r0", "r1", "r2", "r3"]
    assert [r.responses[0].text for r in result] == ["P0", "P1", "P2", "P3"]
    ids = [row["id"] for row in read_jsonl(partial_path(out))[1:]]
    assert ids == ["r0", "r1", "r2", "r3"]


def test_other_settings_refuse_the_journal_unless_forced(tmp_path):
    out = tmp_path / "out.jsonl"
    journal = Journal(out, "fp-a")
    journal.load()
    journal.append(_answer(_records(1)))
    with pytest.raises(UsageError, match="--force"):
        Journal(out, "fp-b").load()
    assert not Journal(out, "fp-b", force=True).load()


def test_force_keeps_a_journal_of_the_same_run(tmp_path):
    """--force discards only another run's journal: continuing this run's writes the file starting over would, so a
    Makefile that passes --force loses nothing to an interruption."""
    out = tmp_path / "out.jsonl"
    journal = Journal(out, "fp-a", identity={"config": {"k": 1}})
    journal.load()
    journal.append(_answer(_records(2)))
    kept = Journal(out, "fp-a", force=True, identity={"config": {"k": 1}})
    assert kept.stale() is None and len(kept) == 2 and "r1" in kept
    assert Journal(out, "fp-b", identity={"config": {"k": 2}}).stale() == ["k 1 -> 2"]
    assert len(Journal(out, "fp-b", force=True, identity={"config": {"k": 2}})) == 0


KILLABLE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from stages.runtime.runs import BatchResult, StageRun
    from stages.contract.inputs import load_records
    from stages.contract.schema import Response
    from pydantic import BaseModel

    class Config(BaseModel):
        delay: float = 0.0

    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    loaded = load_records(src)
    run = StageRun("test", Config(), out, [loaded.summary])
    log = open(sys.argv[3], "a")

    def work(batch, batch_ids):
        for r in batch:
            log.write(r.id + "\\n"); log.flush()
        time.sleep(float(sys.argv[4]))
        return BatchResult([r.model_copy(update={"responses": [Response(text="x" + r.id, source="t")]}) for r in batch])

    run.finish(run.batches(loaded.records, 3, work).in_order(r.id for r in loaded.records))
    """
)


def test_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path, write_jsonl):
    src = write_jsonl("in.jsonl", [{"id": f"r{i}", "prompt": f"p{i}"} for i in range(30)])
    out, log = tmp_path / "out.jsonl", tmp_path / "work.log"
    script = tmp_path / "stage.py"
    script.write_text(KILLABLE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(src), str(out), str(log), "0.15"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if partial_path(out).exists() and len(read_jsonl(partial_path(out))) >= 7:  # header + two batches
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed stage must not leave a finished-looking artifact"
    journaled = len(read_jsonl(partial_path(out))) - 1
    assert 6 <= journaled < 30

    subprocess.run([sys.executable, str(script), str(src), str(out), str(log), "0"], env=env, check=True)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(30)]
    assert all(r["responses"][0]["text"] == "x" + r["id"] for r in rows)
    assert not partial_path(out).exists()
    worked = log.read_text().split()
    recomputed = len(worked) - 30
    assert 0 <= recomputed <= 3, f"recomputed {recomputed} records, more than one batch"
    assert (tmp_path / "out.jsonl.meta.json").exists()
