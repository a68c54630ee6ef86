"""The page itself: one HTML file holding its style, its script and the data, needing no network."""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

from stages.view.config import ViewConfig
from stages.view.load import Loaded
from stages.view.summary import render_summary

# The page may load nothing from anywhere: its own inline style and script are all it runs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def page_data(loaded: Loaded, config: ViewConfig) -> dict[str, Any]:
    """What the page's script renders: the files, and each prompt with every file's entry for it (0 where a file
    does not have the prompt), in the order the prompts first appear."""
    order: dict[str, Any] = {}
    for artifact in loaded.artifacts:
        for pid, prompt in artifact.prompts.items():
            order.setdefault(pid, prompt)
    return {
        "files": [{"label": a.label, "kind": a.kind} for a in loaded.artifacts],
        "pageSize": config.page_size,
        "prompts": [[pid, prompt, [a.entries.get(pid, 0) for a in loaded.artifacts]] for pid, prompt in order.items()],
    }


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<` can close the element or open a comment."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def render_page(loaded: Loaded, config: ViewConfig) -> str:
    """The whole page as one string."""
    title = config.title or ", ".join(a.label for a in loaded.artifacts) or "training"
    assets = resources.files("stages.view") / "assets"
    style = (assets / "view.css").read_text(encoding="utf-8")
    script = (assets / "view.js").read_text(encoding="utf-8")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>rrhf view: {escape(title)}</title>
<style>{style}</style></head>
<body>
<header class="top"><h1>{escape(title)}</h1></header>
<section id="summary">{render_summary(loaded)}</section>
<section id="controls" hidden>
<input id="search" type="search" placeholder="search prompts and responses" aria-label="search">
<label>source <select id="source"><option value="">all</option></select></label>
<label>responses <select id="order"><option value="file">as written</option>
<option value="score">by score</option></select></label>
<label>prompts <select id="sort"></select></label>
<label id="dropped-filter" hidden><input id="dropped" type="checkbox"> dropped only</label>
<span class="pager"><button id="prev" type="button">&larr;</button> <span id="status"></span>
<button id="next" type="button">&rarr;</button></span>
</section>
<main id="cards"></main>
<script type="application/json" id="data">{script_json(page_data(loaded, config))}</script>
<script>{script}</script>
</body></html>
"""
