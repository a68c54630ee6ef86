"""The page itself: one HTML file holding its style, its script and the data, needing no network."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from html import escape
from importlib import resources
from typing import Any, TextIO

from stages.view.config import ViewConfig
from stages.view.load import Loaded
from stages.view.summary import render_summary

# The page may load nothing from anywhere: its own inline style and script are all it runs.
# V8 refuses strings over about 512 M characters (2**29 - 24): the data goes in blocks far below that, so a page of
# any size parses.
CHUNK_CHARS = 64 * 2**20
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def page_files(loaded: Loaded, config: ViewConfig) -> dict[str, Any]:
    """The page's settings for its script: the files shown and the cards per page."""
    return {"files": [{"label": a.label, "kind": a.kind} for a in loaded.artifacts], "pageSize": config.page_size}


def page_prompts(loaded: Loaded) -> Iterator[list[Any]]:
    """Each prompt with every file's entry for it (0 where a file does not have it), in the order the prompts
    first appear."""
    order: dict[str, Any] = {}
    for artifact in loaded.artifacts:
        for pid, prompt in artifact.prompts.items():
            order.setdefault(pid, prompt)
    for pid, prompt in order.items():
        yield [pid, prompt, [a.entries.get(pid, 0) for a in loaded.artifacts]]


def write_prompt_blocks(handle: TextIO, rows: Iterable[str], chunk_chars: int = CHUNK_CHARS) -> int:
    """The prompts' JSON rows as arrays in `<script class="prompts">` blocks of about `chunk_chars` characters each,
    so the page's script parses many strings below the browser's longest string, never one of the whole data; the
    blocks written."""
    blocks, size = 0, 0
    for row in rows:
        if blocks and size + len(row) <= chunk_chars:
            handle.write("," + row)
            size += len(row) + 1
            continue
        handle.write(("]</script>\n" if blocks else "") + '<script type="application/json" class="prompts">[' + row)
        blocks, size = blocks + 1, len(row)
    handle.write("]</script>\n" if blocks else "")
    return blocks


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<` can close the element or open a comment."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def write_page(handle: TextIO, loaded: Loaded, config: ViewConfig, chunk_chars: int = CHUNK_CHARS) -> None:
    """Write the whole page; the data goes out a prompt at a time, never as one string of the whole page."""
    title = config.title or ", ".join(a.label for a in loaded.artifacts) or "training"
    assets = resources.files("stages.view") / "assets"
    style = (assets / "view.css").read_text(encoding="utf-8")
    handle.write(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>rrhf view: {escape(title)}</title>
<style>{style}</style></head>
<body>
<header class="top"><h1>{escape(title)}</h1></header>
<section id="summary">{render_summary(loaded)}</section>
{CONTROLS}
<main id="cards"></main>
<script type="application/json" id="data">""")
    handle.write(script_json(page_files(loaded, config)) + "</script>\n")
    write_prompt_blocks(handle, (script_json(row) for row in page_prompts(loaded)), chunk_chars)
    handle.write("<script>")
    handle.write((assets / "view.js").read_text(encoding="utf-8"))
    handle.write("</script>\n</body></html>\n")


CONTROLS = """<section id="controls" hidden>
<input id="search" type="search" placeholder="search prompts and responses, or id:ID (press /)" aria-label="search">
<label>source <select id="source"><option value="">all</option></select></label>
<label>responses <select id="order"><option value="file">as written</option>
<option value="score">by score</option></select></label>
<label>prompts <select id="sort"></select></label>
<label id="dropped-filter" hidden><input id="dropped" type="checkbox"> dropped only</label>
<span class="pager"><button id="prev" type="button">&larr;</button> <span id="status"></span>
<button id="next" type="button">&rarr;</button></span>
</section>"""
