"""Prepared train data in the cache: `$RRHF_CACHE/train-data/KEY`, prepared once per input, tokenizer and length,
then memory-mapped by every run and every rank that trains on it.

RRHF_CACHE names the cache folder (like HF_HOME for Hugging Face), by default `$XDG_CACHE_HOME/rrhf`, else
`~/.cache/rrhf`. KEY is a hash of all that decides the data: the input's content as prepared (the hash of the bytes
the preparing pass read; an `hf:` dataset: `readers.hf_digest`) and
the options it is read with, the tokenizer's contents, `--max-length`, the library versions that tokenise and
LAYOUT. A folder appears complete or not at all: it is built under a hidden name beside it and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from stages.contract.artifacts import fsync_dir, fsync_file
from stages.contract.errors import RrhfError
from stages.contract.inputs import InputFile, InputSummary
from stages.contract.meta import fingerprint, local_files
from stages.runtime.console import log
from stages.runtime.launch import Launch
from stages.train.data import DataNeeds
from stages.train.dataset import LAYOUT, PreparedData, PreparedInfo, complete
from stages.train.prepare import prepare

WAIT_SECONDS = 1800  # as long as torch waits for a collective by default
POLL_SECONDS = 0.5


def cache_root() -> Path:
    """The rrhf cache folder: $RRHF_CACHE, else $XDG_CACHE_HOME/rrhf, else ~/.cache/rrhf."""
    if os.environ.get("RRHF_CACHE"):
        return Path(os.environ["RRHF_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "rrhf"


def prepared_data(
    source: InputFile,
    tokenizer: Any,
    max_length: int,
    launch: Launch,
    needs: DataNeeds = DataNeeds(),
    sha256: str | None = None,
) -> tuple[PreparedData, InputSummary]:
    """The training queries of `source`, prepared now or reused as an earlier run prepared them, and what they were
    prepared from. `sha256`: the input's hash as the run recorded it (else taken now): data prepared from those
    bytes is reused, and a preparation refuses other bytes (BadInput, naming the file), so data is only ever kept
    under the hash of the bytes it was prepared from. In a launch of several processes the first of each node
    (local rank 0) prepares while the others wait for its folder. `needs`: what the loss reads of each record (a
    reference), or checks there (scores)."""
    recorded = source.content_sha256() if sha256 is None else sha256
    folder = cache_root() / "train-data" / data_key(source, recorded, tokenizer, max_length, needs)
    if launch.local_rank == 0:
        info = complete(folder)
        if info is None:
            folder, info = _prepare(source, recorded, tokenizer, max_length, folder.parent, needs)
        else:
            os.utime(folder)  # when a run last used it: what `rrhf cache clean` goes by
            log.info("train: reusing prepared data from %s", folder)
    else:
        info = _wait_for(folder)
    return PreparedData(folder, info), InputSummary(source.spec, info.format, info.records, recorded, source.options)


def data_key(
    source: InputFile, sha256: str | None, tokenizer: Any, max_length: int, needs: DataNeeds = DataNeeds()
) -> str:
    """The name of the folder holding the queries of `source`'s bytes of hash `sha256` (None: an `hf:` dataset with
    no prepared files, known by its name) for this tokenizer, length and loss's needs."""
    import tokenizers
    import transformers

    identity = {
        "layout": LAYOUT,
        "input": sha256 or source.spec,
        "format": source.inputs.format,
        "options": source.options,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_length": max_length,
        # The reference read decides the data; the scores check decides whether it was made (so not reused unmade).
        "reference": needs.reference,
        "scores": needs.scores,
        "sft_sources": list(needs.sft_sources),
        "versions": [transformers.__version__, tokenizers.__version__],
    }
    return fingerprint(identity)[:32]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what decides a tokenizer's ids: a fast tokenizer's whole definition (vocabulary, merges, pre- and
    post-processing), its chat template and special tokens; a slow one's files, by name, size and time."""
    digest = hashlib.sha256()
    described = {
        "class": type(tokenizer).__name__,
        "chat_template": getattr(tokenizer, "chat_template", None),
        "special_tokens": getattr(tokenizer, "special_tokens_map", None),
        "ids": [tokenizer.bos_token_id, tokenizer.eos_token_id],
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        files = local_files({"tokenizer": str(tokenizer.name_or_path)})
        digest.update(json.dumps([tokenizer.name_or_path, files], default=str).encode())
    return digest.hexdigest()


def _prepare(
    source: InputFile, sha256: str | None, tokenizer: Any, max_length: int, parent: Path, needs: DataNeeds
) -> tuple[Path, PreparedInfo]:
    """Prepare into a hidden folder in `parent`, then rename it into place under the key of the bytes the pass
    read (refused unless their hash is `sha256`, where given): a preparation cut short (killed, a bad record, an
    input changed meanwhile) never leaves a folder that looks complete, nor one named for other bytes."""
    parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(parent)
    staging = parent / f".{data_key(source, sha256, tokenizer, max_length, needs)}.{_host()}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    clock = time.perf_counter()
    try:
        rows = source.read(sha256=sha256)
        info = prepare(rows, tokenizer, max_length, staging, needs)
        folder = parent / data_key(source, rows.summary.sha256, tokenizer, max_length, needs)
        for path in staging.iterdir():
            fsync_file(path)
        if folder.exists() and complete(folder) is None:
            shutil.rmtree(folder)  # an incomplete folder from elsewhere (copied in part, emptied): replaced
        try:
            staging.rename(folder)
        except OSError:
            if complete(folder) is None:
                raise
            shutil.rmtree(staging)  # another run prepared the same data meanwhile: theirs is as good
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # One line, once done: a bad record must be the only line a failed run writes.
    log.info("train: prepared %d queries from %d records in %.1f s, kept in %s for reruns", info.counts.queries,
             info.records, time.perf_counter() - clock, folder)
    return folder, info


def _wait_for(folder: Path) -> PreparedInfo:
    """Wait for the node's first process to publish `folder`. A failure there ends the launch (torchrun and
    accelerate stop every process when one fails); the timeout covers launchers that do not."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (info := complete(folder)) is None:
        if time.monotonic() > deadline:
            raise RrhfError(
                f"{folder}: the training data was not prepared within {WAIT_SECONDS} s by the launch's first process "
                "on this node (local rank 0); see its error"
            )
        time.sleep(POLL_SECONDS)
    return info


def _remove_abandoned(parent: Path) -> None:
    # Hidden folders of preparations on this host whose process is gone (killed): never reused, only removed.
    for staging in parent.glob(f".*.{_host()}.*.tmp"):
        pid = staging.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _host() -> str:
    # Keeps a shared cache folder's staging names apart across machines, whose process ids overlap.
    return socket.gethostname().replace(".", "-") or "host"
