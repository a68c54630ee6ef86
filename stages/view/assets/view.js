// rrhf view: renders the prompt cards from the JSON data block, one page of cards at a time. Every text from
// the artifacts goes through textContent, never innerHTML, so a response holding markup shows as text.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const files = data.files;
  const prompts = []; // [id, prompt, [entry | 0 per file]]; entry: {r, m?, p?, d?, x?}
  for (const block of document.querySelectorAll("script.prompts")) {
    for (const row of JSON.parse(block.textContent)) prompts.push(row); // blocks: no one string holds all the data
  }
  const many = files.length > 1;
  const $ = (id) => document.getElementById(id);
  const state = { query: "", source: "", order: "file", sort: "file", dropped: false, page: 0 };
  let shown = prompts.map((_, i) => i);
  let haystack = null; // lower-cased text of each prompt card, built on the first search

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const fmt = (x) => (x === null || x === undefined ? "unscored" : Number(x).toFixed(4));
  const promptText = (p) => (typeof p === "string" ? p : p.map((m) => m.role + ": " + m.content).join("\n"));
  const parts = (row) => row[2].filter((e) => e);
  const best = (e) => Math.max(...e.r.map((r) => (r[2] === null ? -Infinity : r[2])));
  const worst = (e) => Math.min(...e.r.map((r) => (r[2] === null ? Infinity : r[2])));
  const delta = (row) => (row[2][0] && row[2][row[2].length - 1] && "m" in row[2][0] && "m" in row[2][row[2].length - 1]
    ? row[2][row[2].length - 1].m - row[2][0].m : null);

  // Sort keys: higher first; a prompt without the value goes last.
  const SORTS = {
    file: null,
    best: (row) => Math.max(...parts(row).map(best)),
    worst: (row) => -Math.min(...parts(row).map(worst)),
    spread: (row) => Math.max(...parts(row).map((e) => best(e) - worst(e))),
  };
  const SORT_NAMES = { file: "as written", best: "best score first", worst: "worst score first",
    spread: "widest score spread first" };
  if (many) {
    SORTS.gain = delta;
    SORTS.loss = (row) => { const d = delta(row); return d === null ? null : -d; };
    SORT_NAMES.gain = "largest gain (last file over first) first";
    SORT_NAMES.loss = "largest loss first";
  }
  if (prompts.some((row) => parts(row).some((e) => e.x))) {
    SORTS.disagree = (row) => (parts(row).some((e) => e.x) ? 1 : 0);
    SORT_NAMES.disagree = "scorers disagree first";
  }

  function setup() {
    const sources = new Set();
    let dropped = false;
    for (const row of prompts) for (const e of parts(row)) {
      for (const r of e.r) sources.add(r[1]);
      if (e.d) dropped = true;
    }
    for (const s of [...sources].sort()) $("source").append(new Option(s, s));
    for (const [key, name] of Object.entries(SORT_NAMES)) $("sort").append(new Option(name, key));
    $("dropped-filter").hidden = !dropped;
    $("controls").hidden = prompts.length === 0;
    let timer = null;
    $("search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.query = $("search").value.trim(); refilter(); }, 150);
    });
    $("source").addEventListener("change", () => { state.source = $("source").value; refilter(); });
    $("sort").addEventListener("change", () => { state.sort = $("sort").value; refilter(); });
    $("dropped").addEventListener("change", () => { state.dropped = $("dropped").checked; refilter(); });
    $("order").addEventListener("change", () => { state.order = $("order").value; render(); });
    $("prev").addEventListener("click", () => { state.page -= 1; render(); });
    $("next").addEventListener("click", () => { state.page += 1; render(); });
    window.addEventListener("resize", drawAllPairs);
    window.addEventListener("hashchange", fromHash);
    document.addEventListener("keydown", (event) => {
      if (event.target.closest && event.target.closest("input, select, textarea")) return;
      if (event.key === "/") { event.preventDefault(); $("search").focus(); }
      else if (event.key === "ArrowRight" && !$("next").disabled) $("next").click();
      else if (event.key === "ArrowLeft" && !$("prev").disabled) $("prev").click();
    });
  }

  // A card's id links to the page showing that card alone (#ID), to share or come back to.
  function fromHash() {
    let id = location.hash.slice(1);
    try { id = decodeURIComponent(id); } catch (error) { /* a hash typed by hand: taken as it is */ }
    $("search").value = id ? "id:" + id : "";
    state.query = $("search").value;
    refilter();
  }

  function matches(i, needle) {
    const row = prompts[i];
    if (state.dropped && !parts(row).some((e) => e.d)) return false;
    if (state.source && !parts(row).some((e) => e.r.some((r) => r[1] === state.source))) return false;
    if (state.query.startsWith("id:")) return row[0] === state.query.slice(3).trim();
    if (needle) {
      if (haystack === null) {
        haystack = prompts.map((p) => (p[0] + "\n" + promptText(p[1]) + "\n" +
          parts(p).map((e) => e.r.map((r) => r[0]).join("\n")).join("\n")).toLowerCase());
      }
      return haystack[i].includes(needle);
    }
    return true;
  }

  function refilter() {
    const needle = state.query.toLowerCase();
    shown = prompts.map((_, i) => i).filter((i) => matches(i, needle));
    const key = SORTS[state.sort];
    if (key) {
      const values = new Map(shown.map((i) => [i, key(prompts[i])]));
      const rankOf = (v) => (v === null || !Number.isFinite(v) ? -Infinity : v);
      shown.sort((a, b) => rankOf(values.get(b)) - rankOf(values.get(a)) || a - b);
    }
    state.page = 0;
    render();
  }

  function render() {
    const size = data.pageSize;
    const pages = Math.max(1, Math.ceil(shown.length / size));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const first = state.page * size;
    const cards = $("cards");
    cards.replaceChildren(...shown.slice(first, first + size).map((i) => card(prompts[i])));
    $("status").textContent = shown.length === 0 ? "no prompt matches"
      : `prompts ${first + 1}–${Math.min(first + size, shown.length)} of ${shown.length.toLocaleString()}` +
        (shown.length < prompts.length ? ` (filtered from ${prompts.length.toLocaleString()})` : "") +
        ` · page ${state.page + 1} of ${pages}`;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    drawAllPairs();
  }

  function card(row) {
    const [id, prompt, entries] = row;
    const node = el("article", "card");
    node.dataset.id = id;
    const head = el("header", "card-head");
    const link = el("a", "pid", id);
    link.href = "#" + encodeURIComponent(id);
    head.append(link);
    const d = many ? delta(row) : null;
    if (d !== null) head.append(el("span", "delta " + (d > 0 ? "up" : d < 0 ? "down" : ""),
      `Δ mean score ${d >= 0 ? "+" : ""}${d.toFixed(4)} (${files[files.length - 1].label} − ${files[0].label})`));
    if (entries.some((e) => e && e.x)) head.append(el("span", "flag", "scorers disagree on the best response"));
    node.append(head, promptBlock(prompt));
    const columns = el("div", "columns");
    columns.style.setProperty("--columns", String(files.length));
    entries.forEach((e, f) => columns.append(column(e, f)));
    node.append(columns);
    return node;
  }

  function promptBlock(prompt) {
    const block = el("div", "prompt");
    if (typeof prompt === "string") {
      block.append(el("div", "text", prompt));
      return block;
    }
    for (const message of prompt) {
      const turn = el("div", "turn role-" + String(message.role).replace(/[^a-z]/gi, ""));
      turn.append(el("span", "role", message.role), el("div", "text", message.content));
      block.append(turn);
    }
    return block;
  }

  function column(e, f) {
    const node = el("section", "column");
    const title = el("h3", "", files[f].label);
    if (e && "m" in e) title.append(el("small", "mean", ` mean ${fmt(e.m)}`));
    node.append(title);
    if (!e) { node.append(el("p", "missing", "not in this file")); return node; }
    if (e.d) node.append(el("p", "dropped", e.d));
    let order = e.r.map((_, i) => i);
    if (state.order === "score") order.sort((a, b) => (e.r[b][2] ?? -Infinity) - (e.r[a][2] ?? -Infinity) || a - b);
    const list = el("div", "responses" + (e.p ? " paired" : ""));
    const top = Math.min(...e.r.map((r) => r[3] ?? Infinity));
    const bottom = Math.max(...e.r.map((r) => r[3] ?? -Infinity));
    const decided = top !== bottom && Number.isFinite(top);
    for (const i of order) {
      const [text, source, score, rank, named, cut] = e.r[i];
      const item = el("div", "response");
      item.dataset.index = String(i);
      item.dataset.source = source;
      if (state.source && source !== state.source) item.hidden = true;
      const tags = el("div", "response-head");
      tags.append(el("span", "index", `#${i + 1}`), el("span", "source", source), el("span", "score", fmt(score)),
        el("span", "length", `${text.length.toLocaleString()} chars`));
      if (rank !== null) tags.append(el("span", "rank", `rank ${rank}`));
      if (decided && rank === top) { item.classList.add("best"); tags.append(el("span", "mark", "best")); }
      if (decided && rank === bottom) { item.classList.add("worst"); tags.append(el("span", "mark", "worst")); }
      if (named) for (const [name, value] of Object.entries(named)) tags.append(el("span", "named", `${name} ${fmt(value)}`));
      if (cut) {
        const mark = el("span", "cut", "cut");
        mark.title = "the sampler's token limit cut this response (finish_reason \"length\"): training learns no end token after it";
        tags.append(mark);
      }
      const body = el("div", "text", text);
      item.append(tags, body);
      list.append(item);
    }
    node.append(list);
    if (e.p) {
      list.prepend(document.createElementNS("http://www.w3.org/2000/svg", "svg"));
      list.firstChild.setAttribute("class", "arcs");
      node.append(el("p", "pairs", "pairs (better ≻ worse): " + e.p.map(([a, b]) => `#${a + 1} ≻ #${b + 1}`).join(", ")));
    }
    list.pairs = e.p || null;
    return node;
  }

  // The chosen pairs as arcs in the list's left margin, from the better response to the worse one.
  function drawAllPairs() {
    for (const list of document.querySelectorAll(".responses.paired")) drawPairs(list);
  }

  function drawPairs(list) {
    const svg = list.querySelector("svg.arcs");
    const box = list.getBoundingClientRect();
    const middle = new Map();
    for (const item of list.querySelectorAll(".response")) {
      if (item.hidden) continue;
      const r = item.getBoundingClientRect();
      middle.set(Number(item.dataset.index), r.top - box.top + Math.min(r.height / 2, 14));
    }
    svg.setAttribute("width", "36");
    svg.setAttribute("height", String(box.height));
    svg.replaceChildren();
    const ns = "http://www.w3.org/2000/svg";
    for (const [a, b] of list.pairs) {
      if (!middle.has(a) || !middle.has(b)) continue;
      const y1 = middle.get(a), y2 = middle.get(b);
      const bend = 34 - Math.min(30, 6 + Math.abs(y2 - y1) / 12);
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", `M36 ${y1} C ${bend} ${y1} ${bend} ${y2} 36 ${y2}`);
      path.setAttribute("class", "arc");
      const dot = document.createElementNS(ns, "circle");
      dot.setAttribute("cx", "33"); dot.setAttribute("cy", String(y2)); dot.setAttribute("r", "2.5");
      dot.setAttribute("class", "arc-end");
      svg.append(path, dot);
    }
  }

  setup();
  fromHash();
  document.body.dataset.ready = "1"; // for tests and scripts: the first page of cards is drawn
})();
