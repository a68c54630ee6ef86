"""Checkpoints that are complete or absent: a checkpoint is written under OUTDIR/.partial and renamed into place
as OUTDIR/checkpoint-N once every file of it is on disk, so a kill or a full disk never leaves one that looks whole."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from stages.contract.artifacts import fsync_dir, fsync_file
from stages.contract.errors import RrhfError, first_line
from stages.runtime.console import log

STAGING = ".partial"
"""The folder under OUTDIR where a checkpoint is written before it is renamed into place."""

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_LAST_FILE = "trainer_state.json"  # transformers' Trainer writes it last into a checkpoint


def checkpoint_folders(outdir: Path) -> list[Path]:
    """Every `checkpoint-N` folder in `outdir`, oldest step first."""
    if not outdir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in outdir.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found)]


def is_complete(folder: Path) -> bool:
    """Whether a checkpoint folder holds trainer_state.json, which Trainer writes last: a folder a kill left
    behind where checkpoints were saved in place (rrhf before staging) lacks it."""
    return (folder / _LAST_FILE).is_file()


def checkpoint_step(folder: Path) -> int:
    """The optimiser step a `checkpoint-N` folder was saved at."""
    match = _CHECKPOINT.match(folder.name)
    if match is None:
        raise ValueError(f"{folder} is not a checkpoint folder")
    return int(match.group(1))


def latest_complete(outdir: Path) -> Path | None:
    """The newest complete checkpoint in `outdir`, or None."""
    complete = [folder for folder in checkpoint_folders(outdir) if is_complete(folder)]
    return complete[-1] if complete else None


def drop_unfinished(outdir: Path) -> None:
    """Remove what an interrupted save left in `outdir` (the staging folder, incomplete checkpoint folders),
    saying so in one line."""
    left = [folder for folder in checkpoint_folders(outdir) if not is_complete(folder)]
    staging = outdir / STAGING
    if staging.is_dir():
        left += sorted(staging.iterdir()) or [staging]
    if not left:
        return
    log.warning("train: removing %s, left incomplete by an interrupted save", ", ".join(str(p) for p in left))
    for folder in left:
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Make a fully written checkpoint durable and rename it into place as `final` (a stale one there is
    replaced)."""
    for root, _, files in os.walk(staged):
        for name in files:
            fsync_file(Path(root) / name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    fsync_dir(final.parent)
    _remove_if_empty(staged.parent)


def discard(staged: Path) -> None:
    """Remove a checkpoint whose save failed, freeing what it took of a full disk."""
    shutil.rmtree(staged, ignore_errors=True)
    _remove_if_empty(staged.parent)


def is_write_failure(err: BaseException) -> bool:
    """Whether `err` is a failed write: an OS error, safetensors' error, or torch's zip writer failing."""
    from safetensors import SafetensorError

    if isinstance(err, OSError | SafetensorError):
        return True
    # torch.save reports a short write as a RuntimeError raised by its zip writer.
    return isinstance(err, RuntimeError) and any(s in str(err) for s in ("PytorchStreamWriter", "inline_container"))


def write_failure(folder: Path, what: str, err: BaseException) -> RrhfError:
    """The one-line error of a save that could not write `folder`."""
    return RrhfError(f"{folder}: could not write the {what} ({first_line(err)})")


def _remove_if_empty(folder: Path) -> None:
    # Other ranks may still be writing there in a launch whose save failed on one rank only.
    try:
        folder.rmdir()
    except OSError:
        pass
