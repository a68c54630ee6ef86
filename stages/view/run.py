"""The view stage: read the artifacts and write the page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stages.contract.artifacts import atomic_open
from stages.contract.errors import UsageError
from stages.contract.formats import InputOptions
from stages.runtime.outputs import check_output, lock_output, unlock_output
from stages.view.config import ViewConfig
from stages.view.load import load_targets
from stages.view.page import write_page


def run_view(targets: Sequence[str], output: Path, config: ViewConfig, inputs: InputOptions = InputOptions()
             ) -> dict[str, int]:
    """Write one self-contained HTML page showing `targets`; returns what it holds (files, prompts, responses)."""
    check_output(output, targets)
    loaded = load_targets(targets, inputs)
    if not loaded.artifacts and not loaded.trainings:
        raise UsageError("nothing to show: name an artifact file, a training folder or an eval folder")
    check_output(output, loaded.files)
    lock_output(output)
    try:
        with atomic_open(output) as handle:
            write_page(handle, loaded, config)
    finally:
        unlock_output(output)
    prompts = {pid for a in loaded.artifacts for pid in a.entries}
    return {
        "files": len(loaded.artifacts) + len(loaded.trainings),
        "prompts": len(prompts),
        "responses": sum(len(part["r"]) for a in loaded.artifacts for part in a.entries.values()),
    }
