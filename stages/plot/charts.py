"""Drawing with matplotlib's headless backend: training curves and reward distributions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stages.contract.errors import BadInput
from stages.contract.inputs import InputFile
from stages.contract.metrics import CURVES, METRICS_FILE, read_metrics


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def training_curves(metrics: Sequence[Mapping[str, Any]], output: Path, title: str = "") -> None:
    """Loss, rank loss, SFT loss and rank accuracy against the step, one panel each."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    for ax, key in zip(axes.flat, CURVES, strict=True):
        points = [(m["step"], m[key]) for m in metrics if m.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3)
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def reward_curve(values: Sequence[float], output: Path, title: str = "") -> None:
    """Mean reward against the round (round 0: the initial policy)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(len(values)), values, marker="o")
    ax.set_xlabel("round")
    ax.set_ylabel("mean reward")
    ax.set_xticks(range(len(values)))
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def reward_histograms(groups: Mapping[str, Sequence[float]], output: Path, title: str = "") -> None:
    """Overlaid reward histograms on shared bins, with each group's mean marked."""
    plt = _pyplot()
    values = [v for group in groups.values() for v in group]
    low, high = min(values), max(values)
    bins = [low + (high - low) * i / 30 for i in range(31)] if high > low else 10
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, group in groups.items():
        patches = ax.hist(group, bins=bins, alpha=0.5, label=f"{label} (mean {sum(group) / len(group):.3f})")[2]
        ax.axvline(sum(group) / len(group), color=patches[0].get_facecolor(), linestyle="--", alpha=1.0)
    ax.set_xlabel("reward")
    ax.set_ylabel("responses")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def plot(targets: Sequence[str], output: Path) -> str:
    """A training folder (or its metrics.jsonl) gives curves; scored files give reward histograms, one group per
    file (or per source when there is one file). Returns what was drawn."""
    first = Path(targets[0])
    if first.is_dir() or first.name == METRICS_FILE:
        if len(targets) > 1:
            raise BadInput(targets[1], "plot one training folder at a time")
        rows = read_metrics(first)
        if not rows:
            raise BadInput(str(first), "no metrics.jsonl: not a folder written by `rrhf train`")
        training_curves(rows, output, title=str(first))
        return f"training curves of {first}"
    groups: dict[str, list[float]] = {}
    for target in targets:
        for record in InputFile(target).records():
            for response in record.responses:
                if response.score is not None:
                    key = target if len(targets) > 1 else response.source
                    groups.setdefault(key, []).append(response.score)
    if not groups:
        raise BadInput(targets[0], "no scored responses to plot; run `rrhf score` first")
    reward_histograms(groups, output, title="reward")
    return f"reward histograms of {', '.join(groups)}"
