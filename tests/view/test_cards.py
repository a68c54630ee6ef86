"""The pure parts of the page: ranks, pairs regrouped by prompt, drop reasons, comparisons, charts and escaping."""

import json
import re

from stages.contract.schema import Record, Response
from stages.view.cards import PairGroups, competition_ranks, drop_reason, entry, scorers_disagree
from stages.view.page import script_json
from stages.view.summary import compare, pearson, source_figures
from stages.view.svg import bin_counts, histogram, line_chart, nice_ticks


def test_competition_ranks_share_ties_and_skip_unscored():
    assert competition_ranks([0.2, 0.9, 0.2, None, 0.5]) == [3, 1, 3, None, 2]
    assert competition_ranks([None, None]) == [None, None]


def test_entry_keeps_named_and_raw_scores_and_the_mean():
    responses = [Response(text="a", source="policy", score=1.0, scores={"rm": 1.0}, raw_score=3.0),
                 Response(text="b", source="gpt", score=0.0)]
    part = entry(responses, [(0, 1)])
    assert part["r"] == [["a", "policy", 1.0, 1, {"rm": 1.0, "raw": 3.0}], ["b", "gpt", 0.0, 2, None]]
    assert part["m"] == 0.5 and part["p"] == [[0, 1]] and "d" not in part and "x" not in part


def test_entry_marks_a_response_the_token_limit_cut():
    responses = [Response(text="a", score=1.0, finish_reason="length"), Response(text="b", score=0.0,
                 finish_reason="stop"), Response(text="c", score=0.5, finish_reason="content_filter")]
    assert [len(r) for r in entry(responses)["r"]] == [6, 5, 5] and entry(responses)["r"][0][5] == 1


def test_scorers_disagree_when_named_scores_pick_different_bests():
    agree = [Response(text="a", scores={"rm": 2, "judge": 9}), Response(text="b", scores={"rm": 1, "judge": 3})]
    differ = [Response(text="a", scores={"rm": 2, "judge": 3}), Response(text="b", scores={"rm": 1, "judge": 9})]
    assert not scorers_disagree(agree) and scorers_disagree(differ)
    assert entry(differ)["x"] == 1


def test_pair_rows_regroup_into_one_card_per_prompt():
    groups = PairGroups()
    rows = [("p1/0>1", "a", "b"), ("p1/0>2", "a", "c"), ("p1/1>2", "b", "c"), ("p2/0>1", "x", "y")]
    for rid, chosen, rejected in rows:
        groups.add(Record(id=rid, prompt="q", prompt_id=rid.split("/")[0],
                          responses=[Response(text=chosen, source="chosen", score=ord(chosen[0]) * -1.0),
                                     Response(text=rejected, source="rejected", score=ord(rejected[0]) * -1.0)]))
    cards = {pid: part for pid, _, part in groups.entries()}
    assert list(cards) == ["p1", "p2"]
    assert [r[0] for r in cards["p1"]["r"]] == ["a", "b", "c"]
    assert cards["p1"]["p"] == [[0, 1], [0, 2], [1, 2]]
    assert [r[3] for r in cards["p1"]["r"]] == [1, 2, 3]


def test_drop_reasons_name_the_missing_signal_or_the_margin():
    assert "same score" in drop_reason([0.5, 0.5], 0.0)
    assert "at least 0.2 apart" in drop_reason([0.5, 0.6], 0.2)


def test_source_figures_split_tied_wins_and_skip_undecided_prompts():
    parts = [entry([Response(text="a", source="x", score=1.0), Response(text="b", source="y", score=1.0),
                    Response(text="c", source="z", score=0.0)]),
             entry([Response(text="a", source="x", score=2.0), Response(text="b", source="y", score=1.0)]),
             entry([Response(text="a", source="x", score=1.0), Response(text="b", source="y", score=1.0)])]
    figures, decided = source_figures(parts)
    assert decided == 2
    assert figures["x"].wins == 1.5 and figures["y"].wins == 0.5 and figures["z"].wins == 0
    assert figures["x"].mean == 4 / 3 and figures["z"].responses == 1


def test_compare_is_the_mean_difference_and_win_rate_on_shared_prompts():
    first = {"a": {"m": 0.1}, "b": {"m": 0.5}, "c": {"m": 0.3}, "only": {"m": 9.0}}
    other = {"a": {"m": 0.4}, "b": {"m": 0.5}, "c": {"m": 0.2}, "unscored": {"r": []}}
    figures = compare(first, other)
    assert figures["prompts"] == 3 and figures["win_rate"] == 0.5
    assert abs(figures["difference"] - (0.3 + 0.0 - 0.1) / 3) < 1e-12
    # Differences 0.3, 0.0, -0.1 about their mean 1/15: squares 0.0544, 0.0044, 0.0278 sum to 0.0867; over 2 and
    # rooted, 0.2082; over sqrt(3), 0.1202.
    assert abs(figures["se"] - 0.12019) < 1e-4
    assert compare(first, {"z": {"m": 1.0}}) == {"prompts": 0}


def test_ticks_and_bins():
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(3, 3) == [3]
    assert bin_counts([0, 0.1, 0.5, 1.0], [0, 0.5, 1.0]) == [2, 2]


def test_charts_escape_labels_and_draw_one_shape_per_group():
    svg = histogram({"<b>a</b>": [0.1, 0.2], "b": [0.5]}, "scores")
    assert svg.count("<polygon") == 2 and "<b>" not in svg and "&lt;b&gt;a&lt;/b&gt;" in svg
    curve = line_chart({"run": [(1, 2.0), (2, 1.0)]}, "loss")
    assert curve.count("<polyline") == 1 and "loss" in curve
    assert histogram({}, "scores") == "" and line_chart({}, "loss") == ""


def test_script_json_cannot_close_its_element():
    text = '</script><script>alert(1)</script><!-- & \u2028'
    encoded = script_json({"t": text})
    assert not re.search("<", encoded)
    assert json.loads(encoded) == {"t": text}


def test_pearson_and_the_length_bias_of_a_source():
    assert pearson([1, 2, 3], [2, 4, 6]) == 1.0 and pearson([1, 2, 3], [3, 2, 1]) == -1.0
    assert pearson([1, 2], [1, 2]) is None and pearson([1, 1, 1], [1, 2, 3]) is None
    parts = [entry([Response(text="a" * n, source="rm", score=n / 10)]) for n in (5, 10, 20, 40)]
    figures, _ = source_figures(parts)
    assert figures["rm"].length_correlation > 0.99 and figures["rm"].lengths == [5, 10, 20, 40]


def test_prompt_blocks_split_below_the_limit_and_hold_every_row():
    import io

    from stages.view.page import write_prompt_blocks

    rows = [json.dumps({"n": i, "text": "x" * 40}) for i in range(30)]  # 53 characters each
    handle = io.StringIO()
    assert write_prompt_blocks(handle, iter(rows), chunk_chars=200) == 10  # 3 rows and 2 commas fit in 200
    blocks = re.findall(r'<script type="application/json" class="prompts">(.*?)</script>', handle.getvalue())
    assert len(blocks) == 10 and all(len(b) <= 200 + 2 for b in blocks)
    assert [row["n"] for b in blocks for row in json.loads(b)] == list(range(30))
    empty = io.StringIO()
    assert write_prompt_blocks(empty, iter([])) == 0 and empty.getvalue() == ""
