"""OUTDIR/metrics.jsonl of a training run: one JSON line per logged step. Part of the artifact contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.contract.errors import BadInput, Location

METRICS_FILE = "metrics.jsonl"
CURVES = ("loss", "rank_loss", "sft_loss", "rank_acc")
"""The logged values drawn as training curves, by `rrhf plot` and `rrhf view`."""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every logged step of a run, given its folder or its metrics file; empty when there is none. BadInput
    naming file:line for a line that is not a JSON object."""
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            if number == len(lines) and not text.endswith("\n"):
                break  # the step a running training is writing now
            raise BadInput(Location(str(path), number), f"not JSON ({err})") from None
        if not isinstance(row, dict):
            raise BadInput(Location(str(path), number), "expected a JSON object of one logged step")
        rows.append(row)
    return rows
