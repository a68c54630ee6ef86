"""OUTDIR/metrics.jsonl of a training run: one JSON line per logged step. Part of the artifact contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
CURVES = ("loss", "rank_loss", "sft_loss", "rank_acc")
"""The logged values drawn as training curves, by `rrhf plot` and `rrhf view`."""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every logged step of a run, given its folder or its metrics file; empty when there is none."""
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
