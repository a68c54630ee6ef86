"""What `--resume` checks and repairs: OUTDIR/run.json records the fingerprint of the run that made the checkpoints,
so a resume under other settings or another input is refused, and metrics.jsonl is cut back to the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.contract.artifacts import atomic_open, write_json
from stages.contract.errors import UsageError
from stages.contract.inputs import InputFile, LoadedInput
from stages.contract.meta import differences, fingerprint, input_info, redact, run_identity
from stages.runtime.config import outcome_settings
from stages.runtime.console import log
from stages.train.config import TrainConfig

RUN_FILE = "run.json"
EXTENDABLE = ("max_steps", "epochs")
"""Settings a resume may change: continuing a run for longer is what `--resume` is for."""


def run_record(config: TrainConfig, loaded: InputFile | LoadedInput, world_size: int) -> dict[str, Any]:
    """What a resume must match: the settings that decide the training (and the number of processes, which
    decides the batch), the input and the files the settings name (the base model's), and their fingerprint. The
    input is known by its content hash and options, so it need not have been read through."""
    settings = {k: v for k, v in outcome_settings(config).items() if k not in EXTENDABLE}
    settings["world_size"] = world_size
    identity = run_identity("train", settings, [input_info(loaded)])  # stamps the model's files: once
    return {"rrhf_run": 1, "fingerprint": fingerprint(identity), "identity": redact(identity)}


def write_run_record(outdir: Path, record: dict[str, Any]) -> None:
    """Record the run a later `--resume` continues."""
    write_json(outdir / RUN_FILE, record)


def check_continues(outdir: Path, record: dict[str, Any]) -> None:
    """Refuse, in one line, a resume whose settings, input or model files differ from the run that wrote OUTDIR's
    checkpoints."""
    earlier = _read(outdir / RUN_FILE)
    if earlier is None:
        log.warning("train: %s has no readable %s (an older rrhf wrote it): the settings of the run resumed cannot "
                    "be checked", outdir, RUN_FILE)
        return
    if earlier.get("fingerprint") == record["fingerprint"]:
        return
    changes = differences(earlier.get("identity") or {}, record["identity"])
    raise UsageError(
        f"{outdir}: --resume under other settings than the run it continues ({', '.join(changes) or 'settings'}); "
        "rerun with the run's settings, or with --force instead of --resume to start over"
    )


def trim_metrics(path: Path, step: int) -> None:
    """Drop the lines of steps after `step` (logged after the checkpoint a resume starts from), so a resumed run
    logs each step once."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and _step(line) <= step]
    if len(kept) == len(lines):
        return
    with atomic_open(path) as handle:
        handle.writelines(line + "\n" for line in kept)


def _step(line: str) -> float:
    # A line torn by a kill has no step: it goes with the steps after the checkpoint.
    try:
        row = json.loads(line)
    except ValueError:
        return float("inf")
    step = row.get("step") if isinstance(row, dict) else None
    return step if isinstance(step, int | float) else float("inf")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and "fingerprint" in value else None
