"""The page's summary: per-source figures, file-against-file comparisons and charts, as escaped HTML. Pure
functions over loaded artifacts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from stages.contract.metrics import CURVES
from stages.report.paired import paired_difference, win_rate
from stages.view.load import Artifact, Loaded, Training
from stages.view.svg import histogram, line_chart

RANK_COUNTS = ("prompts_in", "prompts_kept", "pairs", "dropped_no_signal", "dropped_no_pair", "duplicate_responses",
               "cut_by_top_k")


@dataclass
class SourceFigures:
    """One source's responses in one file: how many, their scores and lengths, and the share of prompts it won."""

    responses: int = 0
    scores: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)  # of the scored responses, in characters
    wins: float = 0.0  # a win shared by tied sources counts a share each

    @property
    def mean(self) -> float | None:
        return math.fsum(self.scores) / len(self.scores) if self.scores else None

    @property
    def length_correlation(self) -> float | None:
        """Pearson's r between score and length: how much the scorer favours long (or short) answers."""
        return pearson(self.lengths, self.scores)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's correlation coefficient; None for fewer than 3 points or a constant side."""
    if len(xs) < 3:
        return None
    mx, my = math.fsum(xs) / len(xs), math.fsum(ys) / len(ys)
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx, syy = math.fsum((x - mx) ** 2 for x in xs), math.fsum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def source_figures(entries: Sequence[Mapping[str, Any]]) -> tuple[dict[str, SourceFigures], int]:
    """Per-source figures of one file, and how many prompts had a winner (two responses scored differently)."""
    figures: dict[str, SourceFigures] = {}
    decided = 0
    for part in entries:
        responses = part["r"]
        for text, source, score, *_ in responses:
            item = figures.setdefault(source, SourceFigures())
            item.responses += 1
            if score is not None:
                item.scores.append(score)
                item.lengths.append(len(text))
        scores = {r[2] for r in responses if r[2] is not None}
        if len(scores) < 2:
            continue
        decided += 1
        best = {r[1] for r in responses if r[3] == 1}
        for source in best:
            figures[source].wins += 1 / len(best)
    return figures, decided


def compare(first: Mapping[str, Mapping[str, Any]], other: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`other` against `first` on the prompts both scored: the mean per-prompt reward difference with its standard
    error, and the share of prompts where `other`'s mean is higher (a tie counts half)."""
    ours, theirs = ({pid: part["m"] for pid, part in parts.items() if "m" in part} for parts in (other, first))
    difference = paired_difference(ours, theirs)
    if difference is None:
        return {"prompts": 0}
    return {"prompts": difference.prompts, "difference": difference.mean, "se": difference.se,
            "win_rate": win_rate(ours, theirs)}


def own(artifact: Artifact) -> dict[str, dict[str, Any]]:
    """The file's own entries by prompt id: not the prompts rank dropped, which the page shows from the scored
    file."""
    return {pid: part for pid, part in artifact.entries.items() if "d" not in part}


def kept(artifact: Artifact) -> list[dict[str, Any]]:
    """The file's own entries, in file order."""
    return list(own(artifact).values())


def render_summary(loaded: Loaded) -> str:
    """The summary section's HTML."""
    parts = [_files_table(loaded.artifacts, loaded.trainings)]
    if any(part["r"] for a in loaded.artifacts for part in kept(a)):
        parts.append(_sources_table(loaded.artifacts))
    if len(loaded.artifacts) > 1:
        parts.append(_comparison_table(loaded.artifacts))
    parts += [_rank_counts(a) for a in loaded.artifacts if a.meta and a.meta.stage == "rank"]
    parts += [_report(folder, report) for folder, report in loaded.reports.items()]
    charts = [_histograms(loaded.artifacts)] + _curves(loaded.trainings)
    if drawn := "".join(c for c in charts if c):
        parts.append(f'<div class="charts">{drawn}</div>')
    return "".join(parts)


def _files_table(artifacts: Sequence[Artifact], trainings: Sequence[Training]) -> str:
    rows = []
    for a in artifacts:
        parts = kept(a)
        held = f"{len(parts):,} prompts, {sum(len(part['r']) for part in parts):,} responses"
        if dropped := len(a.entries) - len(parts):
            held += f"; {dropped:,} prompts rank dropped"
        made = f"{a.meta.stage}, {a.meta.finished_at or a.meta.started_at}" if a.meta else ""
        rows.append(_row(a.label, a.kind, a.path, held, made))
    rows += [_row(t.label, "training", t.path, f"{len(t.steps):,} logged steps", "") for t in trainings]
    return _table("files", ("label", "kind", "path", "holds", "written by"), rows)


def _sources_table(artifacts: Sequence[Artifact]) -> str:
    rows = []
    contested = False  # a file with two sources or more: which of them won is worth a column
    for a in artifacts:
        figures, decided = source_figures(kept(a))
        contested |= len(figures) > 1
        for source, item in figures.items():
            won = f"{item.wins / decided:.1%}" if decided and len(figures) > 1 else ""
            length = _fmt(math.fsum(item.lengths) / len(item.lengths) if item.lengths else None, digits=0)
            rows.append([a.label, source, f"{item.responses:,}", _fmt(item.mean), length,
                         _fmt(item.length_correlation, signed=True, digits=2), won])
    header = ["file", "source", "responses", "mean score", "mean length (chars)", "score–length r",
              "best response in (share of prompts)"]
    width = len(header) if contested else len(header) - 1
    return _table("sources", header[:width], [_row(*cells[:width]) for cells in rows])


def _comparison_table(artifacts: Sequence[Artifact]) -> str:
    first = artifacts[0]
    rows = []
    for other in artifacts[1:]:
        figures = compare(own(first), own(other))
        rows.append(_row(f"{other.label} vs {first.label}", f"{figures['prompts']:,}",
                         _fmt(figures.get("difference"), signed=True), _fmt(figures.get("se")),
                         _fmt(figures.get("win_rate"))))
    header = ("files", "shared prompts", "mean reward difference", "± one standard error", "win rate")
    return _table("before / after", header, rows)


def _rank_counts(artifact: Artifact) -> str:
    counts = artifact.meta.counts if artifact.meta else {}
    rows = [_row(key.replace("_", " "), f"{counts[key]:,}") for key in RANK_COUNTS if key in counts]
    return _table(f"rank: {artifact.label}", ("count", ""), rows) if rows else ""


def _report(folder: str, report: Mapping[str, Any]) -> str:
    rows = []
    for label in ("baseline", "model"):
        if isinstance(part := report.get(label), dict):
            rows.append(_row(label, str(part.get("model", "")), _fmt(part.get("mean_reward")),
                             _fmt(part.get("reference_perplexity"))))
    table = _table(f"eval: {folder}", ("", "model", "mean reward", "reference perplexity"), rows)
    notes = []
    if isinstance(gain := report.get("reward_over_baseline"), dict) and (mean := _fmt(gain.get("mean"), signed=True)):
        se = _fmt(gain.get("se"))
        notes.append(f"reward of the model over the baseline, paired over {gain.get('prompts')} prompts: {mean}"
                     + (f" ± {se} (one standard error)" if se else ""))
    if shown := _fmt(report.get("win_rate")):  # empty for a report without one (no baseline)
        notes.append(f"win rate of the model over the baseline: {shown}")
    return table + "".join(f'<p class="note">{escape(note)}</p>' for note in notes)


def _histograms(artifacts: Sequence[Artifact]) -> str:
    groups: dict[str, list[float]] = {}
    for a in artifacts:
        parts = kept(a)
        sources = {r[1] for part in parts for r in part["r"]}
        for part in parts:
            for _, source, score, *_ in part["r"]:
                if score is not None:
                    key = a.label if len(sources) == 1 else source if len(artifacts) == 1 else f"{a.label} · {source}"
                    groups.setdefault(key, []).append(score)
    return histogram(groups, "scores") if groups else ""


def _curves(trainings: Sequence[Training]) -> list[str]:
    charts = []
    for key in CURVES:
        series = {t.label: [(row["step"], row[key]) for row in t.steps
                            if isinstance(row.get(key), int | float) and isinstance(row.get("step"), int | float)]
                  for t in trainings}
        if any(series.values()):
            charts.append(line_chart({k: v for k, v in series.items() if v}, key.replace("_", " ")))
    return charts


def _fmt(value: Any, signed: bool = False, digits: int = 4) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return ""
    return f"{value:{'+' if signed else ''},.{digits}f}"


def _row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def _table(title: str, header: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return (f'<table class="summary"><caption>{escape(title)}</caption><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
