"""Reading what `rrhf view` is given: artifact files, training folders (metrics.jsonl) and eval folders."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.contract.errors import BadInput
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile
from stages.contract.meta import Meta, read_meta
from stages.contract.metrics import METRICS_FILE, read_metrics
from stages.view.cards import PairGroups, drop_reason, entry, plain_prompt, record_pairs

PREFERENCE_FORMATS = ("trl-preference", "hh")
EVAL_REPORT = "report.json"
EVAL_LABELS = ("baseline", "model")  # `rrhf eval` writes scored-baseline.jsonl and scored-model.jsonl


@dataclass
class Artifact:
    """One file's part of the page: its card entries and prompts by id, in file order."""

    label: str
    path: str
    kind: str  # prompts, samples, scored, ranked or pairs
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    prompts: dict[str, Any] = field(default_factory=dict)
    meta: Meta | None = None


@dataclass
class Training:
    """One training run's logged steps."""

    label: str
    path: str
    steps: list[dict[str, Any]]


@dataclass
class Loaded:
    """Everything the page shows."""

    artifacts: list[Artifact] = field(default_factory=list)
    trainings: list[Training] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # eval folder -> report.json

    @property
    def files(self) -> list[str]:
        """The files read, which the page must not overwrite."""
        return [a.path for a in self.artifacts] + [t.path for t in self.trainings]


def load_targets(targets: Sequence[str], inputs: InputOptions = InputOptions()) -> Loaded:
    """Read every target: a file artifact, a training folder or its metrics.jsonl, or an eval folder."""
    loaded = Loaded()
    for target in targets:
        path = Path(target)
        if path.is_dir() and (path / METRICS_FILE).is_file() or path.name == METRICS_FILE:
            metrics = path / METRICS_FILE if path.is_dir() else path
            loaded.trainings.append(Training(_name(path if path.is_dir() else path.parent), str(metrics),
                                             read_metrics(path)))
        elif path.is_dir() and (path / EVAL_REPORT).is_file():
            loaded.reports[str(path)] = _read_report(path / EVAL_REPORT)
            for label in EVAL_LABELS:
                scored = path / f"scored-{label}.jsonl"
                if scored.is_file():
                    loaded.artifacts.append(read_artifact(str(scored), label, inputs))
        elif path.is_dir():
            raise BadInput(target, f"a folder, but neither a training run's ({METRICS_FILE}) nor an eval's "
                                   f"({EVAL_REPORT}); name an artifact file")
        else:
            loaded.artifacts.append(read_artifact(target, _name(path), inputs))
    _unique_labels(loaded.artifacts, lambda a: Path(a.path).parent)
    _unique_labels(loaded.trainings, lambda t: Path(t.path).parent.parent)
    return loaded


def read_artifact(spec: str, label: str, inputs: InputOptions = InputOptions()) -> Artifact:
    """One artifact's cards. Preference rows are regrouped by prompt; a ranked file names the prompts rank dropped
    when the scored file it was made from is still there, unchanged."""
    stream = InputFile(spec, inputs).read()
    artifact = Artifact(label, spec, "prompts")
    groups = PairGroups()
    for _, record in stream:
        if stream.format in PREFERENCE_FORMATS:
            groups.add(record)
            continue
        artifact.prompts[record.id] = plain_prompt(record.prompt)
        artifact.entries[record.id] = entry(record.responses, record_pairs(record))
    for key, prompt, part in groups.entries():
        artifact.prompts[key], artifact.entries[key] = prompt, part
    artifact.kind = _kind(artifact.entries.values(), stream.format)
    artifact.meta = read_meta(Path(spec)) if not spec.startswith("hf:") else None
    if artifact.kind in ("ranked", "pairs"):
        _add_dropped(artifact)
    return artifact


def _kind(entries: Any, fmt: str | None) -> str:
    parts = list(entries)
    if fmt in PREFERENCE_FORMATS:
        return "pairs"
    if any("p" in part for part in parts):
        return "ranked"
    if any(response[2] is not None for part in parts for response in part["r"]):
        return "scored"
    return "samples" if any(part["r"] for part in parts) else "prompts"


def _add_dropped(artifact: Artifact) -> None:
    """Put back, in the scored file's order, the prompts `rrhf rank` dropped, each with why."""
    meta = artifact.meta
    if meta is None or meta.stage != "rank" or len(meta.inputs) != 1:
        return
    source = meta.inputs[0]
    path = Path(source.path)
    if not path.is_file() or source.sha256 is None:
        return
    margin = float(meta.config.get("min_margin") or 0.0)
    entries, prompts = {}, {}
    try:
        # Only the very file rank read: other bytes are refused once read, and nothing is put back.
        for _, record in InputFile(str(path)).read(sha256=source.sha256):
            prompts[record.id] = artifact.prompts.get(record.id) or plain_prompt(record.prompt)
            entries[record.id] = artifact.entries.get(record.id) or entry(
                record.responses, dropped=drop_reason([r.score for r in record.responses], margin))
    except BadInput:
        return
    artifact.entries, artifact.prompts = entries, prompts


def _read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise BadInput(str(path), f"not JSON ({err})") from None
    if not isinstance(report, dict):
        raise BadInput(str(path), "not an `rrhf eval` report (expected a JSON object)")
    return report


def _name(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl", ".json", ".csv", ".parquet"):
        name = name.removesuffix(suffix)
    return name or str(path)


def _unique_labels(items: Sequence[Any], folder: Callable[[Any], Path]) -> None:
    # Two targets with one name (round-1/scored.jsonl, round-2/scored.jsonl) are told apart by their folders.
    seen = Counter(item.label for item in items)
    for item in items:
        if seen[item.label] > 1:
            item.label = f"{folder(item).name}/{item.label}"
