"""`rrhf sample` killed with SIGKILL and started again with the same command: it continues from its journal,
and the result is the file an uninterrupted run writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stages.runtime.journal import partial_path

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def _complete_records(journal: Path) -> int:
    # Lines still being written have no newline yet; the first line is the header.
    return max(journal.read_bytes().count(b"\n") - 1, 0) if journal.exists() else 0


def test_sigkill_then_rerun_continues_and_matches_an_uninterrupted_run(tiny_models, tmp_path, write_jsonl, cli):
    src = write_jsonl("p.jsonl", [{"id": f"p{i:02d}", "prompt": "word " * (i % 7 + 1) + str(i)} for i in range(24)])
    args = ["--model", str(tiny_models.policy), "-k", "2", "--max-new-tokens", "24", "--batch-size", "2"]
    reference = tmp_path / "reference.jsonl"
    assert cli("sample", src, "-o", reference, *args).exit_code == 0

    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-c", "from rrhf_cli.app import main; main()", "sample", str(src), "-o", str(out), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _complete_records(partial_path(out)) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed run must not leave a finished-looking output"
    journaled = _complete_records(partial_path(out))
    assert 4 <= journaled < 24

    rerun = cli("sample", src, "-o", out, *args)  # the same command, in this process to save a start-up
    assert rerun.exit_code == 0, rerun.stderr
    # Only the unjournaled prompts were sampled again; a batch cut short by the kill is all that is redone.
    assert f"{journaled} of 24 records already done" in rerun.stderr
    assert out.read_text() == reference.read_text()
    assert not partial_path(out).exists()
    # The cut responses are counted over the resumed records too, as an uninterrupted run counts them.
    cut = sum(r["finish_reason"] == "length" for line in out.read_text().splitlines()
              for r in json.loads(line)["responses"])
    counts = [json.loads(Path(f"{f}.meta.json").read_text())["counts"] for f in (out, reference)]
    assert counts[0]["responses_cut"] == counts[1]["responses_cut"] == cut > 0


def _start(src: Path, out: Path, args: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-c", "from rrhf_cli.app import main; main()", "sample", str(src), "-o", str(out), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def _wait_for(out: Path, proc: subprocess.Popen, records: int) -> None:
    deadline = time.monotonic() + 120
    while _complete_records(partial_path(out)) < records and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be stopped"


def test_one_writer_per_output_sigterm_keeps_the_journal_and_changed_weights_refuse_the_resume(
    tiny_models, tmp_path, write_jsonl, cli
):
    import shutil

    from transformers import AutoModelForCausalLM

    policy = tmp_path / "policy"
    shutil.copytree(tiny_models.policy, policy)
    # 64 prompts in batches of 2: seconds of sampling left when the second run and the SIGTERM come.
    src = write_jsonl("p.jsonl", [{"id": f"p{i:02d}", "prompt": "word " * (i % 7 + 1) + str(i)} for i in range(64)])
    args = ["--model", str(policy), "-k", "2", "--max-new-tokens", "32", "--batch-size", "2"]
    out = tmp_path / "out.jsonl"
    proc = _start(src, out, args)
    _wait_for(out, proc, 2)

    second = cli("sample", src, "-o", out, *args, "--seed", "7")  # another run on the same output: refused
    assert second.exit_code == 2
    assert second.stderr.strip() == (f"rrhf: error: {out}: another rrhf run (process {proc.pid}) is writing it; "
                                     "wait for it to end, or write elsewhere")  # fmt: skip

    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("rrhf: error: interrupted (SIGTERM); ") and "Traceback" not in stderr
    assert last.endswith(f"kept in {partial_path(out)}: run the same command again to continue")
    assert 2 <= _complete_records(partial_path(out)) < 64 and not out.exists()

    # The policy is retrained in place (as the iterative loop does): its journal is no longer this run's.
    model = AutoModelForCausalLM.from_pretrained(policy)
    model.lm_head.weight.data.mul_(1.5)
    model.save_pretrained(policy)
    refused = cli("sample", src, "-o", out, *args)
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        f"rrhf: error: {partial_path(out)} was written by a run with other inputs, settings or model files (files "
        "of model changed); rerun with the same command to resume, or add --force to start over"
    ]
    assert cli("sample", src, "-o", out, *args, "--force").exit_code == 0  # the killed run's lock blocks nothing
    assert len(out.read_text().splitlines()) == 64
