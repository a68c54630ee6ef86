"""The `FILE.meta.json` sidecar: what made an artifact, from which inputs, with which settings."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from stages.contract import __version__
from stages.contract.artifacts import write_json
from stages.contract.inputs import InputSummary

REDACTED = "<redacted>"
# Keys that may hold credentials; `*_env` keys name an environment variable, not its value.
_SECRET_KEY = re.compile(r"(api[_-]?key|token(?!s|izer)|secret|password|passwd|authorization|credential)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-|hf_|Bearer\s)[A-Za-z0-9_\-\.]{8,}")


class InputInfo(BaseModel):
    """One input of a stage: where it came from, its format and its content hash."""

    path: str
    format: str | None = None
    sha256: str | None = None
    records: int | None = None
    options: dict[str, Any] | None = None  # --field/--prompt-field and --limit, where given


class Meta(BaseModel):
    """The sidecar of one artifact."""

    stage: str
    rrhf_version: str = __version__
    config: dict[str, Any] = {}
    config_file: str | None = None  # the --config file the settings were read from, where one was
    inputs: list[InputInfo] = []
    counts: dict[str, int] = {}
    world_size: int = 1  # processes that shared the work (a data-parallel launch)
    started_at: str
    finished_at: str | None = None


def input_info(summary: InputSummary) -> InputInfo:
    """What the meta records of one input: what its pass read."""
    return InputInfo(
        path=summary.spec, format=summary.format, sha256=summary.sha256, records=summary.count,
        options=summary.options or None,
    )


CONFIG_FILE = "_rrhf_config_file"
"""The attribute of a resolved settings object naming the config file it was read from: kept beside the settings,
not among them, so a moved config file with the same settings still resumes a run."""


def config_file_of(config: BaseModel) -> str | None:
    """The config file `config` was read from (`--config`), or None."""
    value = getattr(config, CONFIG_FILE, None)
    return value if isinstance(value, str) else None


def stage_meta(
    stage: str, config: BaseModel, inputs: Sequence[InputSummary], counts: dict[str, int], started_at: str
) -> Meta:
    """The sidecar of a finished stage: its redacted settings, inputs and counts, ending now."""
    return Meta(
        stage=stage,
        config=redact(config.model_dump(mode="json")),
        config_file=config_file_of(config),
        inputs=[input_info(i) for i in inputs],
        counts=counts,
        started_at=started_at,
        finished_at=now(),
    )


def now() -> str:
    """The current UTC time in ISO 8601, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def meta_path(artifact: Path) -> Path:
    """`FILE.meta.json` beside a file artifact, `DIR/meta.json` inside a folder artifact."""
    if artifact.is_dir():
        return artifact / "meta.json"
    return artifact.with_name(artifact.name + ".meta.json")


def write_meta(artifact: Path, meta: Meta) -> None:
    """Write the sidecar atomically, with every secret-looking value redacted."""
    write_json(meta_path(artifact), redact(meta.model_dump(mode="json")))


def read_meta(artifact: Path) -> Meta | None:
    """The sidecar of an artifact, or None when it has none or it is unreadable."""
    path = meta_path(artifact)
    if not path.is_file():
        return None
    try:
        return Meta.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError):
        return None


def redact(value: Any, key: str = "") -> Any:
    """Replace values under credential-like keys, and credential-shaped strings, with a marker."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if value is None or key.lower().endswith("_env"):
        return value
    if _SECRET_KEY.search(key) or (isinstance(value, str) and _SECRET_VALUE.match(value)):
        return REDACTED
    return value


def run_identity(stage: str, config: dict[str, Any], inputs: list[InputInfo]) -> dict[str, Any]:
    """What determines a stage's output: its settings, its inputs' contents, and the contents of the local files
    and folders its settings name (a model's weights, mostly: a policy retrained in place is another model)."""
    sources = [[i.sha256 or i.path, i.options] if i.options else i.sha256 or i.path for i in inputs]
    return {"stage": stage, "config": config, "inputs": sources, "files": local_files(config)}


def fingerprint(identity: dict[str, Any]) -> str:
    """A hash of a `run_identity`, so a journal (or a checkpoint) is only resumed by the same run."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


MAX_STAMPED_FILES = 10_000  # a setting naming a huge folder is stamped by its first files only


def local_files(config: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """For each setting that names an existing local file or folder (or `FILE:NAME`, a python scorer): the name,
    size and modification time of the file, or of every file in the folder and its subfolders (without reading
    them: a model's weights can be many GB). A hub name is left to its name."""
    found: dict[str, list[list[Any]]] = {}
    for key, value in config.items():
        if not isinstance(value, str) or not value or len(value) > 4096:
            continue
        path = Path(value).expanduser()
        try:
            if not path.exists() and ":" in value and Path(value.rpartition(":")[0]).is_file():
                path = Path(value.rpartition(":")[0])
            if path.is_file():
                found[key] = [_file_stamp(path, path.parent)]
            elif path.is_dir():
                files = itertools.islice((p for p in path.rglob("*") if p.is_file()), MAX_STAMPED_FILES)
                found[key] = sorted(_file_stamp(p, path) for p in files)
        except OSError:
            continue
    return found


def _file_stamp(path: Path, root: Path) -> list[Any]:
    info = path.stat()
    return [str(path.relative_to(root)), info.st_size, info.st_mtime_ns]


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two `run_identity` results, in words: `lr 0.001 -> 0.01`, `input changed`,
    `files of model changed`."""
    before, after = old.get("config") or {}, new.get("config") or {}
    named = [f"{key} {_shown(before.get(key))} -> {_shown(after.get(key))}"
             for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]
    if old.get("inputs") != new.get("inputs"):
        named.append("input changed")
    old_files, new_files = old.get("files") or {}, new.get("files") or {}
    named += [f"files of {key} changed" for key in sorted(old_files.keys() | new_files.keys())
              if old_files.get(key) != new_files.get(key)]
    return named


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
