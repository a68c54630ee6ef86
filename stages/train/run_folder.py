"""OUTDIR of one `rrhf train` run: checked and locked before any work, readied for a fresh run or a resume once the
input has proved good, and given its meta.json when the model is saved.

OUTDIR/run.json records the fingerprint of the run that made the checkpoints (its settings, input and base model's
files), so a resume under other settings or another input is refused, and metrics.jsonl is cut back to the
checkpoint a resume starts from.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from stages.contract.artifacts import atomic_open, write_json
from stages.contract.errors import RunInterrupted, UsageError, interrupted
from stages.contract.inputs import InputFile, InputSummary
from stages.contract.meta import (
    InputInfo,
    Meta,
    differences,
    fingerprint,
    meta_path,
    now,
    redact,
    run_identity,
    stage_meta,
    write_meta,
)
from stages.contract.metrics import METRICS_FILE
from stages.runtime.config import outcome_settings
from stages.runtime.console import log
from stages.runtime.launch import Launch
from stages.runtime.outputs import check_output, lock_output, unlock_output
from stages.train.checkpoints import STAGING, checkpoint_folders, checkpoint_step, drop_unfinished, latest_complete
from stages.train.config import TrainConfig

RUN_FILE = "run.json"
EXTENDABLE = ("max_steps", "epochs")
"""Settings a resume may change: continuing a run for longer is what `--resume` is for."""


@dataclass(frozen=True)
class RunRecord:
    """What a resume must match (OUTDIR/run.json): the fingerprint of the run's identity, and the identity itself
    (secrets redacted), which names what changed when a resume is refused."""

    fingerprint: str
    identity: dict[str, Any]

    def write(self, outdir: Path) -> None:
        """Record the run a later `--resume` continues."""
        write_json(outdir / RUN_FILE, {"rrhf_run": 1, "fingerprint": self.fingerprint, "identity": self.identity})

    @classmethod
    def read(cls, outdir: Path) -> RunRecord | None:
        """The record in `outdir`, or None where there is none readable (an older rrhf wrote no run.json)."""
        try:
            value = json.loads((outdir / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(value, dict) or "fingerprint" not in value:
            return None
        identity = value.get("identity")
        return cls(value["fingerprint"], identity if isinstance(identity, dict) else {})


def run_record(config: TrainConfig, source: InputInfo, world_size: int) -> RunRecord:
    """What a resume must match: the settings that decide the training (and the number of processes, which
    decides the batch), the input and the files the settings name (the base model's), and their fingerprint. The
    input is known by its content hash and options, so it need not have been read through."""
    settings = {k: v for k, v in outcome_settings(config).items() if k not in EXTENDABLE}
    settings["world_size"] = world_size
    identity = run_identity("train", settings, [source])  # stamps the model's files: once
    return RunRecord(fingerprint(identity), redact(identity))


class RunFolder:
    """OUTDIR of one training run, as a context manager: entering checks the folder against `--resume` and
    `--force`, locks it (one writer: the launch's first process) and fingerprints the run, hashing the input
    (`sha256`: what the preparing pass must read); `start` readies it for training, `finish` writes the meta;
    leaving lets go of the lock."""

    def __init__(self, outdir: Path, config: TrainConfig, source: InputFile, launch: Launch, force: bool) -> None:
        self.outdir, self.config, self.source, self.launch, self.force = outdir, config, source, launch, force
        self.metrics = outdir / METRICS_FILE
        self.started = now()
        self.lead = False  # whether this process writes OUTDIR's files: `start` is told
        self.resuming = config.resume  # --force resumes the checkpoints of this same run (entering decides)
        self.sha256: str | None = None  # the input's, when entering

    def __enter__(self) -> RunFolder:
        """Refuse, in one line and before any work, an OUTDIR this run may not write or a resume it cannot make."""
        # Never over the model being trained, nor the reference.
        check_output(self.outdir, [self.config.model, *filter(None, [self.config.reference_model])], folder=True)
        self._check_checkpoints()
        if self.launch.rank == 0:  # one writer per OUTDIR: the launch's ranks write it together
            lock_output(self.outdir)
        try:
            self.sha256 = self.source.content_sha256()
            known = InputInfo(path=self.source.spec, sha256=self.sha256, options=self.source.options or None)
            self.record = run_record(self.config, known, self.launch.world_size)
            if self.config.resume:
                self._check_continues()
            elif self.force:
                self.resuming = self._same_run()
        except BaseException:
            unlock_output(self.outdir)  # no __exit__ follows an __enter__ that raised
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        unlock_output(self.outdir)

    def start(self, lead: bool) -> Path | None:
        """Ready OUTDIR for training, once the input has proved good, and return the checkpoint to resume from:
        --force drops the earlier run's checkpoints, what an interrupted save left is removed, meta.json goes until
        the run ends, and a fresh run records itself in run.json, a resumed one cuts metrics.jsonl back to its
        checkpoint. Only the process that saves (`lead`) changes files."""
        self.lead = lead
        checkpoint = latest_complete(self.outdir) if self.resuming else None
        self.outdir.mkdir(parents=True, exist_ok=True)
        if not lead:
            return checkpoint
        if self.force and not self.resuming:
            for folder in checkpoint_folders(self.outdir):
                shutil.rmtree(folder)
            shutil.rmtree(self.outdir / STAGING, ignore_errors=True)
        drop_unfinished(self.outdir)
        meta_path(self.outdir).unlink(missing_ok=True)  # a meta.json beside a model being rewritten would vouch for it
        if checkpoint is None:
            self.metrics.unlink(missing_ok=True)
        else:
            trim_metrics(self.metrics, checkpoint_step(checkpoint))
            log.info("train: resuming from %s", checkpoint)
        if checkpoint is None or not (self.outdir / RUN_FILE).is_file():
            self.record.write(self.outdir)
        return checkpoint

    def finish(self, counts: dict[str, int], source: InputSummary) -> Meta:
        """The run's meta, written beside the saved model (by the process that saves); `source`: what the
        training data was prepared from."""
        meta = stage_meta("train", self.config, [source], counts, self.started)
        if self.lead:
            write_meta(self.outdir, meta)
        return meta

    def kept(self) -> str:
        """What a run that stops now leaves to continue from, in words."""
        latest = latest_complete(self.outdir)
        return (f"the last complete checkpoint is {latest}: add --resume to continue from it" if latest
                else "no checkpoint is complete yet, so the same command starts over")

    def interrupted(self, err: KeyboardInterrupt) -> RunInterrupted:
        """Ctrl-C or SIGTERM during training, in one line saying what is kept."""
        return interrupted(err, self.kept())

    def _check_checkpoints(self) -> None:
        checkpoints = checkpoint_folders(self.outdir)
        resume = self.config.resume
        if resume and not checkpoints:
            raise UsageError(f"{self.outdir}: --resume given but there is no checkpoint-* folder to resume from")
        if resume and latest_complete(self.outdir) is None:
            raise UsageError(
                f"{self.outdir}: --resume given but no checkpoint-* folder is complete (their saves were cut short); "
                "--force instead of --resume starts over"
            )
        if checkpoints and not resume and not self.force:
            raise UsageError(
                f"{self.outdir} holds checkpoints of an earlier run; add --resume to continue it or --force to start "
                "over"
            )

    def _same_run(self) -> bool:
        # --force: checkpoints of this same run are resumed (training on from them gives what starting over would
        # reach, for less), those of another run are deleted once the input has proved good.
        if latest_complete(self.outdir) is None:
            return False
        earlier = RunRecord.read(self.outdir)
        if earlier is not None and earlier.fingerprint == self.record.fingerprint:
            log.info("train: --force: %s holds checkpoints of this same run; continuing them", self.outdir)
            return True
        changes = differences(earlier.identity, self.record.identity) if earlier is not None else []
        log.info("train: --force: %s holds checkpoints of another run%s; starting over", self.outdir,
                 f" ({', '.join(changes)})" if changes else "")
        return False

    def _check_continues(self) -> None:
        # A resume whose settings, input or model files differ from the run that wrote OUTDIR's checkpoints.
        earlier = RunRecord.read(self.outdir)
        if earlier is None:
            log.warning("train: %s has no readable %s (an older rrhf wrote it): the settings of the run resumed "
                        "cannot be checked", self.outdir, RUN_FILE)
            return
        if earlier.fingerprint == self.record.fingerprint:
            return
        changes = differences(earlier.identity, self.record.identity)
        raise UsageError(
            f"{self.outdir}: --resume under other settings than the run it continues "
            f"({', '.join(changes) or 'settings'}); rerun with the run's settings, or with --force instead of --resume "
            "to start over"
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
