"""`rrhf view` on real artifacts written by the stages: what the page holds, and how bad input is refused."""

import json
import re

from tests.conftest import read_jsonl

DATA = re.compile(r'<script type="application/json" id="data">(.*?)</script>', re.S)
PROMPTS = re.compile(r'<script type="application/json" class="prompts">(.*?)</script>', re.S)


def page(path):
    """The page's HTML and the data its script renders: the settings, with the prompts of every block."""
    html = path.read_text(encoding="utf-8")
    prompts = [row for block in PROMPTS.findall(html) for row in json.loads(block)]
    return html, json.loads(DATA.search(html).group(1)) | {"prompts": prompts}


def scored_rows():
    return [
        {"id": "kept", "prompt": [{"role": "user", "content": "Say hi"}],
         "responses": [{"text": "hi", "source": "policy", "score": 0.9}, {"text": "yo", "source": "gpt", "score": 0.1},
                       {"text": "hey", "source": "policy", "score": 0.5}]},
        {"id": "flat", "prompt": "Same?", "responses": [{"text": "a", "source": "policy", "score": 0.3},
                                                         {"text": "b", "source": "gpt", "score": 0.3}]},
        {"id": "close", "prompt": "Close?", "responses": [{"text": "c", "source": "policy", "score": 0.30},
                                                           {"text": "d", "source": "gpt", "score": 0.35}]},
    ]


def test_a_scored_file_becomes_cards_with_ranks_and_a_sources_table(tmp_path, write_jsonl, cli):
    scored = write_jsonl("scored.jsonl", scored_rows())
    result = cli("view", scored, "-o", tmp_path / "page.html", "--title", "round <1>", "--page-size", "7")
    assert result.exit_code == 0, result.stderr
    html, data = page(tmp_path / "page.html")
    assert data["files"] == [{"label": "scored", "kind": "scored"}] and data["pageSize"] == 7
    assert [row[0] for row in data["prompts"]] == ["kept", "flat", "close"]
    kept = data["prompts"][0][2][0]
    assert [r[3] for r in kept["r"]] == [1, 3, 2] and kept["m"] == 0.5
    assert data["prompts"][0][1] == [{"role": "user", "content": "Say hi"}]
    assert "<title>rrhf view: round &lt;1&gt;</title>" in html
    assert "<caption>sources</caption>" in html and "<td>gpt</td>" in html and "<svg" in html
    assert not re.search(r"(src|href)=\"https?:", html)  # nothing is fetched


def test_a_ranked_file_shows_its_pairs_and_the_prompts_rank_dropped(tmp_path, write_jsonl, cli):
    scored = write_jsonl("scored.jsonl", scored_rows())
    assert cli("rank", scored, "-o", tmp_path / "ranked.jsonl", "--min-margin", "0.1").exit_code == 0
    assert cli("view", tmp_path / "ranked.jsonl", "-o", tmp_path / "page.html").exit_code == 0
    html, data = page(tmp_path / "page.html")
    assert data["files"][0]["kind"] == "ranked"
    cards = {row[0]: row[2][0] for row in data["prompts"]}
    assert list(cards) == ["kept", "flat", "close"]  # the scored file's order, dropped prompts in place
    assert cards["kept"]["p"] == read_jsonl(tmp_path / "ranked.jsonl")[0]["pairs"] and "d" not in cards["kept"]
    assert "no ranking signal" in cards["flat"]["d"] and "at least 0.1 apart" in cards["close"]["d"]
    assert "<caption>rank: ranked</caption>" in html and "<td>dropped no signal</td><td>1</td>" in html

    # The scored file changed since: which prompts were dropped, and why, is no longer known.
    scored.write_text(scored.read_text() + json.dumps({"id": "new", "prompt": "n", "responses": []}) + "\n")
    assert cli("view", tmp_path / "ranked.jsonl", "-o", tmp_path / "page.html").exit_code == 0
    assert [row[0] for row in page(tmp_path / "page.html")[1]["prompts"]] == ["kept"]


def test_preference_rows_are_regrouped_by_prompt(tmp_path, write_jsonl, cli):
    scored = write_jsonl("scored.jsonl", scored_rows())
    assert cli("rank", scored, "-o", tmp_path / "pairs.jsonl", "--format", "pairs").exit_code == 0
    assert cli("view", tmp_path / "pairs.jsonl", "-o", tmp_path / "page.html").exit_code == 0
    data = page(tmp_path / "page.html")[1]
    assert data["files"][0]["kind"] == "pairs"
    cards = {row[0]: row[2][0] for row in data["prompts"]}
    assert sorted(r[0] for r in cards["kept"]["r"]) == ["hey", "hi", "yo"] and len(cards["kept"]["p"]) == 3
    assert "no ranking signal" in cards["flat"]["d"]


def test_several_files_align_by_prompt_id_with_the_reward_difference(tmp_path, write_jsonl, cli):
    before = write_jsonl("before.jsonl", [{"id": "a", "prompt": "p", "responses": [{"text": "x", "score": 0.1}]},
                                          {"id": "b", "prompt": "q", "responses": [{"text": "y", "score": 0.5}]}])
    (tmp_path / "after").mkdir()
    after = tmp_path / "after" / "before.jsonl"  # the same name in another folder: labelled by its folder
    after.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "b", "prompt": "q", "responses": [{"text": "z", "score": 0.7}]},
        {"id": "c", "prompt": "r", "responses": [{"text": "w", "score": 0.2}]}]))
    assert cli("view", before, after, "-o", tmp_path / "page.html").exit_code == 0
    html, data = page(tmp_path / "page.html")
    assert [f["label"] for f in data["files"]] == [f"{tmp_path.name}/before", "after/before"]
    rows = {row[0]: row[2] for row in data["prompts"]}
    assert list(rows) == ["a", "b", "c"] and rows["a"][1] == 0 and rows["c"][0] == 0
    assert rows["b"][0]["m"] == 0.5 and rows["b"][1]["m"] == 0.7
    assert "<td>1</td><td>+0.2000</td><td></td><td>1.0000</td>" in html  # one shared prompt, +0.2, no spread, won


def test_training_and_eval_folders(tmp_path, write_jsonl, cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 1 / s, "rank_loss": 0.5 / s, "sft_loss": 0.5, "rank_acc": 0.5}) + "\n"
        for s in range(1, 5)))
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    for label, score in (("baseline", 0.2), ("model", 0.6)):
        (evaluation / f"scored-{label}.jsonl").write_text(json.dumps(
            {"id": "h1", "prompt": "p", "responses": [{"text": label, "source": label, "score": score}]}) + "\n")
    (evaluation / "report.json").write_text(json.dumps({
        "model": {"model": "out/", "mean_reward": 0.6, "responses": 1},
        "baseline": {"model": "base/", "mean_reward": 0.2, "responses": 1}, "win_rate": 1.0, "prompts": 1,
        "reward_over_baseline": {"mean": 0.4, "se": None, "prompts": 1}}))
    assert cli("view", evaluation, run, "-o", tmp_path / "page.html").exit_code == 0
    html, data = page(tmp_path / "page.html")
    assert [f["label"] for f in data["files"]] == ["baseline", "model"]
    assert html.count('aria-label="rank loss"') == 1 and "<caption>eval: " in html
    assert "win rate of the model over the baseline: 1.0000" in html
    assert "reward of the model over the baseline, paired over 1 prompts: +0.4000</p>" in html
    report = json.loads((evaluation / "report.json").read_text())
    gain = {"mean": -0.05, "se": 0.02, "prompts": 40}
    (evaluation / "report.json").write_text(json.dumps(report | {"win_rate": 0.0, "reward_over_baseline": gain}))
    assert cli("view", evaluation, "-o", tmp_path / "page.html").exit_code == 0
    html = page(tmp_path / "page.html")[0]
    assert "win rate of the model over the baseline: 0.0000" in html
    assert "paired over 40 prompts: -0.0500 ± 0.0200 (one standard error)" in html
    assert cli("view", run, "-o", tmp_path / "curves.html").exit_code == 0  # training alone: no cards


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, write_jsonl, cli):
    out = tmp_path / "page.html"
    out.write_text("old page")
    bad = write_jsonl("bad.jsonl", [{"prompt": "p", "responses": []}, "{not json"])
    result = cli("view", bad, "-o", out)
    assert result.exit_code == 2 and f"{bad}:2" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "old page"
    result = cli("view", tmp_path, "-o", out)
    assert result.exit_code == 2 and "neither a training run" in result.stderr
    good = write_jsonl("good.jsonl", [{"prompt": "p", "responses": []}])
    before = good.read_bytes()
    result = cli("view", good, "-o", good)
    assert result.exit_code == 2 and "is also an input" in result.stderr and good.read_bytes() == before
    result = cli("view", good, "-o", tmp_path)
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_a_broken_metrics_line_is_named_and_a_line_being_written_skipped(tmp_path, cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss":\n{"step": 3}\n')
    result = cli("view", run, "-o", tmp_path / "page.html")
    assert result.exit_code == 2 and f"{run / 'metrics.jsonl'}:2: not JSON" in result.stderr
    assert not (tmp_path / "page.html").exists()
    # A running training's last line, still being written, is left out.
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    assert cli("view", run, "-o", tmp_path / "page.html").exit_code == 0


def test_prompts_samples_and_hh_files_each_get_their_kind(tmp_path, write_jsonl, cli):
    prompts = write_jsonl("prompts.jsonl", [{"prompt": "p"}])
    samples = write_jsonl("samples.jsonl", [{"id": "a", "prompt": "p", "responses": [{"text": "x", "source": "m"}]}])
    hh = write_jsonl("hh.jsonl", [{"chosen": "\n\nHuman: hi\n\nAssistant: hello",
                                   "rejected": "\n\nHuman: hi\n\nAssistant: go away"}])
    for path, kind in ((prompts, "prompts"), (samples, "samples"), (hh, "pairs")):
        assert cli("view", path, "-o", tmp_path / "page.html").exit_code == 0
        html, data = page(tmp_path / "page.html")
        assert data["files"][0]["kind"] == kind
    card = data["prompts"][0]
    assert card[1] == [{"role": "user", "content": "hi"}]
    assert [r[0] for r in card[2][0]["r"]] == ["hello", "go away"] and card[2][0]["p"] == [[0, 1]]
