"""`rrhf train --resume` after accidents: a save cut short by a kill or a full disk, a resume under other settings,
and metrics logged twice."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM

from tests.conftest import read_jsonl

PROMPTS = ["Say hello.", "Name a fruit.", "Count to three.", "Pick a colour."]
RESPONSES = ["hello there", "apple", "one two three"]

# Runs `rrhf ARGS...` and SIGKILLs it in the middle of saving checkpoint-$KILL_AT_STEP: after its weights and
# optimizer are written, before its RNG and trainer state.
KILLED_MID_SAVE = """
import os, signal, sys
from transformers import Trainer
save_rng_state = Trainer._save_rng_state
def killed(self, output_dir):
    if self.state.global_step == int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
    save_rng_state(self, output_dir)
Trainer._save_rng_state = killed
from rrhf_cli.app import app
app(args=sys.argv[1:], prog_name="rrhf")
"""


@pytest.fixture
def scored(write_jsonl):
    """Four queries of three scored responses."""
    responses = [{"text": text, "score": float(j)} for j, text in enumerate(RESPONSES)]
    rows = [{"id": f"q{i}", "prompt": prompt, "responses": responses} for i, prompt in enumerate(PROMPTS)]
    return write_jsonl("scored.jsonl", rows)


def _train(model: Path, scored: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(scored), "-o", str(out), "--model", str(model), "--lr", "1e-3",
            "--logging-steps", "1", *extra]


def _steps(out: Path) -> list[int]:
    return [row["step"] for row in read_jsonl(out / "metrics.jsonl")]


def _checkpoints(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("checkpoint-*"))


def test_a_kill_mid_save_resumes_from_the_last_complete_checkpoint(tiny_models, scored, tmp_path, cli):
    out = tmp_path / "out"
    args = _train(tiny_models.policy, scored, out, "--max-steps", "4", "--save-steps", "1")
    env = {**os.environ, "KILL_AT_STEP": "3", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_SAVE, *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2"]  # the one cut short is not among them
    assert _steps(out) == [1, 2, 3]

    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "checkpoint-3, left incomplete by an interrupted save" in resumed.stderr
    assert f"resuming from {out / 'checkpoint-2'}" in resumed.stderr
    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-4"]
    assert not (out / ".partial").exists()
    assert _steps(out) == [1, 2, 3, 4]
    assert json.loads((out / "meta.json").read_text())["counts"]["steps"] == 4

    # The resumed run trained what an uninterrupted one trains.
    whole = tmp_path / "whole"
    assert cli(*_train(tiny_models.policy, scored, whole, "--max-steps", "4")).exit_code == 0
    expected = AutoModelForCausalLM.from_pretrained(whole).state_dict()
    for name, tensor in AutoModelForCausalLM.from_pretrained(out).state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)


def test_a_checkpoint_is_saved_under_the_staging_folder_then_renamed(tiny_models, scored, tmp_path, cli, monkeypatch):
    """What StagedCheckpoints relies on: Trainer saves a checkpoint under `args.output_dir` as it is when saving,
    after `on_step_end` and before `on_save`. A transformers release that changes this fails here."""
    from transformers import Trainer

    out = tmp_path / "out"
    saved: list[tuple[str, list[str]]] = []
    save_model = Trainer.save_model

    def recording(self, output_dir=None, _internal_call=False):
        saved.append((str(output_dir), _checkpoints(out)))
        return save_model(self, output_dir, _internal_call)

    monkeypatch.setattr(Trainer, "save_model", recording)
    result = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "2", "--save-steps", "1"))
    assert result.exit_code == 0, result.stderr
    assert saved == [(str(out / ".partial" / "checkpoint-1"), []),
                     (str(out / ".partial" / "checkpoint-2"), ["checkpoint-1"]),
                     (str(out), ["checkpoint-1", "checkpoint-2"])]  # the model, once trained
    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2"] and not (out / ".partial").exists()


def test_a_checkpoint_holding_only_config_files_is_skipped(tiny_models, scored, tmp_path, cli):
    """What a kill left with transformers writing OUTDIR/checkpoint-N in place: the config files, no weights."""
    out = tmp_path / "out"
    assert cli(*_train(tiny_models.policy, scored, out, "--max-steps", "2", "--save-steps", "1")).exit_code == 0
    torn = out / "checkpoint-3"
    torn.mkdir()
    for name in ("config.json", "generation_config.json"):
        shutil.copy(out / "checkpoint-2" / name, torn / name)

    resumed = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "3", "--save-steps", "1", "--resume"))
    assert resumed.exit_code == 0, resumed.stderr
    assert f"removing {torn}, left incomplete" in resumed.stderr
    assert f"resuming from {out / 'checkpoint-2'}" in resumed.stderr
    assert (torn / "trainer_state.json").is_file()  # saved anew, completely
    assert _steps(out) == [1, 2, 3]


def test_only_incomplete_checkpoints_is_a_usage_error(tiny_models, scored, tmp_path, cli):
    out = tmp_path / "out"
    (out / "checkpoint-1").mkdir(parents=True)
    result = cli(*_train(tiny_models.policy, scored, out, "--resume"))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"rrhf: error: {out}: --resume given but no checkpoint-* folder is complete (their saves were cut short); "
        "--force instead of --resume starts over"
    )


def test_resume_under_other_settings_input_or_model_is_refused_in_one_line(tiny_models, scored, tmp_path, cli,
                                                                           write_jsonl):
    model = shutil.copytree(tiny_models.policy, tmp_path / "model")
    out = tmp_path / "out"
    assert cli(*_train(model, scored, out, "--max-steps", "2", "--save-steps", "2")).exit_code == 0
    before = (out / "metrics.jsonl").read_text()
    rows = read_jsonl(scored)
    rows[0]["responses"][0]["score"] = 9.0
    other = write_jsonl("other.jsonl", rows)

    def refused(source: Path, *extra: str) -> str:
        result = cli(*_train(model, source, out, "--max-steps", "4", "--resume", *extra))
        assert result.exit_code == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        return result.stderr.strip()

    assert refused(scored, "--lr", "1e-2") == (
        f"rrhf: error: {out}: --resume under other settings than the run it continues (lr 0.001 -> 0.01); rerun with "
        "the run's settings, or with --force instead of --resume to start over"
    )
    assert "(rank_loss hinge -> logistic, seed 0 -> 1)" in refused(scored, "--rank-loss", "logistic", "--seed", "1")
    assert "(input changed)" in refused(other)
    assert (out / "metrics.jsonl").read_text() == before and _checkpoints(out) == ["checkpoint-2"]

    # Running longer, logging and checkpointing differently is the same run.
    resumed = cli(*_train(model, scored, out, "--max-steps", "3", "--resume", "--logging-steps", "2",
                          "--save-steps", "3", "--save-total-limit", "1"))
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((out / "meta.json").read_text())["config"]["lr"] == 0.001

    # The base model retrained in place is another model.
    (model / "config.json").write_text((model / "config.json").read_text() + "\n")
    assert "(files of model changed)" in refused(scored)


def test_force_starts_over_once_the_input_has_proved_good(tiny_models, scored, tmp_path, cli, write_jsonl):
    out = tmp_path / "out"
    assert cli(*_train(tiny_models.policy, scored, out, "--max-steps", "3", "--save-steps", "1")).exit_code == 0
    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    bad = write_jsonl("bad.jsonl", [{"id": "a", "prompt": "p", "responses": [{"text": "x"}, {"text": "y"}]}])
    refused = cli(*_train(tiny_models.policy, bad, out, "--max-steps", "1", "--force"))
    assert refused.exit_code == 2 and f"{bad}:1:" in refused.stderr
    assert len(_checkpoints(out)) == 3 and (out / "meta.json").is_file()  # a bad input changes nothing

    again = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "2", "--lr", "1e-2", "--save-steps", "2",
                        "--force"))
    assert again.exit_code == 0, again.stderr
    assert _checkpoints(out) == ["checkpoint-2"] and _steps(out) == [1, 2]
    resumed = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "3", "--lr", "1e-2", "--resume"))
    assert resumed.exit_code == 0, resumed.stderr  # run.json is the new run's


def test_force_continues_the_checkpoints_of_the_same_run(tiny_models, scored, tmp_path, cli):
    """What a Makefile passing --force needs after an interruption: the same run's checkpoints are kept and
    continued (each step logged once); another run's are replaced."""
    out = tmp_path / "out"
    first = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "2", "--save-steps", "1"))
    assert first.exit_code == 0, first.stderr
    (out / "meta.json").unlink()  # as an interrupted run leaves OUTDIR: checkpoints, no meta

    again = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "3", "--save-steps", "1", "--force"))
    assert again.exit_code == 0, again.stderr
    assert "holds checkpoints of this same run; continuing them" in again.stderr
    assert f"resuming from {out / 'checkpoint-2'}" in again.stderr
    assert _steps(out) == [1, 2, 3] and _checkpoints(out) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]

    other = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "1", "--lr", "1e-2", "--force"))
    assert other.exit_code == 0, other.stderr
    assert "holds checkpoints of another run (lr 0.001 -> 0.01); starting over" in other.stderr
    assert _steps(out) == [1]


def test_resumed_metrics_log_each_step_once(tiny_models, scored, tmp_path, cli, monkeypatch):
    from stages.train.trainer import MetricsFile

    log_step = MetricsFile.on_log

    def interrupted(self, args, state, control, **kwargs):
        log_step(self, args, state, control, **kwargs)
        if state.global_step == 3:
            raise KeyboardInterrupt  # Ctrl-C after step 3 is logged, before the next checkpoint

    monkeypatch.setattr(MetricsFile, "on_log", interrupted)
    out = tmp_path / "out"
    args = _train(tiny_models.policy, scored, out, "--max-steps", "4", "--save-steps", "2")
    interrupted_run = cli(*args)
    assert interrupted_run.exit_code == 130
    assert _checkpoints(out) == ["checkpoint-2"] and _steps(out) == [1, 2, 3]
    monkeypatch.undo()
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert _steps(out) == [1, 2, 3, 4]
    assert interrupted_run.stderr.splitlines()[-1] == (
        f"rrhf: error: interrupted (SIGINT); the last complete checkpoint is {out / 'checkpoint-2'}: add --resume to "
        "continue from it"
    )


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   SafetensorError("Error while serializing: I/O error: No space left on device")])
@pytest.mark.parametrize("saving", ["checkpoint", "model"])
def test_a_failed_save_is_one_line_naming_the_folder(tiny_models, scored, tmp_path, cli, monkeypatch, error, saving):
    import transformers.modeling_utils

    def full_disk(*args, **kwargs):
        raise error

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    out = tmp_path / "out"
    result = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "2",
                         *(["--save-steps", "1"] if saving == "checkpoint" else [])))
    assert result.exit_code == 1
    folder = out / "checkpoint-1" if saving == "checkpoint" else out
    assert result.stderr.splitlines()[-1] == f"rrhf: error: {folder}: could not write the {saving} ({error})"
    assert "Traceback" not in result.stderr
    assert _checkpoints(out) == [] and not (out / ".partial").exists() and not (out / "meta.json").exists()


def test_a_file_too_large_for_the_disk_fails_the_save_in_one_line(tiny_models, scored, tmp_path):
    """A real failed write: the optimizer state (twice the 175 kB of weights) exceeds the process's file size limit
    while the weights fit, so torch.save's writer fails after safetensors succeeded."""
    out = tmp_path / "out"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (250_000, 250_000))

    args = _train(tiny_models.policy, scored, out, "--max-steps", "2", "--save-steps", "1")
    result = subprocess.run([sys.executable, "-m", "rrhf_cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1].startswith(f"rrhf: error: {out / 'checkpoint-1'}: could not write the "
                                                     "checkpoint (")
    assert "Traceback" not in result.stderr
    assert _checkpoints(out) == [] and not (out / ".partial").exists()


def test_training_over_its_own_model_or_into_a_busy_outdir_is_refused(tiny_models, tmp_path, write_jsonl, cli):
    from stages.runtime.outputs import lock_output, unlock_output

    scored = write_jsonl("scored.jsonl", [{"id": "a", "prompt": "p", "responses": [
        {"text": "x", "score": 1.0}, {"text": "y", "score": 0.0}]}])  # fmt: skip
    result = cli("train", scored, "-o", tiny_models.policy, "--model", tiny_models.policy, "--max-steps", "1")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"rrhf: error: {tiny_models.policy}: is also an input ({tiny_models.policy}); "
                                     "write the output elsewhere")  # fmt: skip
    out = tmp_path / "out"
    code = ("import sys, time; from pathlib import Path; from stages.runtime.outputs import lock_output; "
            "lock_output(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)")
    root = str(Path(__file__).resolve().parents[2])
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": root})
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = cli("train", scored, "-o", out, "--model", tiny_models.policy, "--max-steps", "1")
        assert busy.exit_code == 2 and f"another rrhf run (process {holder.pid}) is writing it" in busy.stderr
    finally:
        holder.kill()
        holder.wait()
    assert cli("train", scored, "-o", out, "--model", tiny_models.policy, "--max-steps", "1").exit_code == 0
    lock_output(out)  # free again after the run
    unlock_output(out)
