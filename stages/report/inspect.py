"""`rrhf inspect`: the summary of an artifact or input file and its meta, as tables or JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.contract.errors import BadInput
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile
from stages.contract.meta import read_meta
from stages.contract.metrics import read_metrics
from stages.report.summary import Stats, Summary, summarize
from stages.runtime.console import output_console, print_json


def inspect(path: str, inputs: InputOptions, json_output: bool = False) -> None:
    """Print the summary of `path` (any input, or a trained model folder) and its meta."""
    if Path(path).is_dir():
        _inspect_model_folder(Path(path), json_output)
        return
    rows = InputFile(path, inputs).read()
    summary = summarize((record for _, record in rows), lambda: rows.format or "rrhf")
    meta = read_meta(Path(path)) if not path.startswith("hf:") else None
    meta_dict = meta.model_dump(mode="json") if meta else None
    if json_output:
        print_json({"path": path, "summary": summary.model_dump(mode="json"), "meta": meta_dict})
        return
    _render(path, summary, meta_dict)


def _inspect_model_folder(folder: Path, json_output: bool) -> None:
    meta = read_meta(folder)
    if meta is None:
        raise BadInput(str(folder), "a folder, but not one written by `rrhf train` (no meta.json)")
    steps = read_metrics(folder)
    last = steps[-1] if steps else None
    if json_output:
        print_json({"path": str(folder), "meta": meta.model_dump(mode="json"), "metrics": last})
        return

    console = output_console()
    table = _key_value_table(f"{folder} (last logged step)")
    for key, value in (last or {}).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    _render_meta(console, meta.model_dump(mode="json"))


def _render(path: str, summary: Summary, meta: dict | None) -> None:
    from rich.table import Table

    console = output_console()
    overview = _key_value_table(path)
    overview.add_row("format", summary.format)
    overview.add_row("records", str(summary.records))
    overview.add_row("chat prompts", str(summary.chat_prompts))
    overview.add_row("responses", str(summary.responses))
    if summary.responses_per_prompt:
        overview.add_row("responses per prompt", _range(summary.responses_per_prompt, digits=1))
    overview.add_row("scored / unscored", f"{summary.scored} / {summary.unscored}")
    if summary.score:
        overview.add_row("score", _range(summary.score))
    for name, stats in summary.named_scores.items():
        overview.add_row(f"scores.{name}", _range(stats))
    if summary.pairs is not None:
        overview.add_row("pairs", str(summary.pairs))
    console.print(overview)
    if summary.sources:
        # Which source wins how many prompts is what `rrhf train --sft-sources` is chosen by.
        scored = bool(summary.source_scores)
        extra = ("mean score", "best of a prompt") if scored else ()
        sources = Table("source", "responses", *extra, title="sources", title_justify="left")
        for source, count in summary.sources.items():
            row = [source, str(count)]
            if scored:
                mean = summary.source_scores.get(source)
                row += [f"{mean.mean:.3f}" if mean else "", str(summary.best_sources.get(source, 0))]
            sources.add_row(*row)
        console.print(sources)
    if meta:
        _render_meta(console, meta)


def _render_meta(console: Any, meta: dict) -> None:
    table = _key_value_table("meta")
    table.add_row("stage", f"{meta['stage']} (rrhf {meta['rrhf_version']})")
    table.add_row("time", f"{meta['started_at']} to {meta.get('finished_at') or '?'}")
    for item in meta["inputs"]:
        table.add_row("input", f"{item['path']} ({item.get('format') or '?'}, sha256 {str(item.get('sha256'))[:12]})")
    table.add_row("counts", ", ".join(f"{k}={v}" for k, v in meta["counts"].items()))
    table.add_row("config", json.dumps(meta["config"], ensure_ascii=False))
    console.print(table)


def _key_value_table(title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    return table


def _range(stats: Stats, digits: int = 3) -> str:
    return (
        f"mean {stats.mean:.{digits}f}  std {stats.std:.{digits}f}  "
        f"min {stats.min:.{digits}f}  max {stats.max:.{digits}f}"
    )
