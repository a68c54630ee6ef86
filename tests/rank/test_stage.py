"""`rrhf rank` end to end on real files: both formats, drops, determinism, bad input, round trip."""

import json
import os

import pytest

from stages.contract.inputs import load_records
from stages.rank import run as ranking_run
from tests.conftest import read_jsonl

SCORED = [
    {
        "id": "a",
        "prompt": "Q1",
        "topic": "t1",
        "responses": [
            {"text": "ok", "source": "policy", "score": 1.0},
            {"text": "great", "source": "gpt-4", "score": 3.0},
            {"text": "ok", "source": "human", "score": 2.0},
            {"text": "bad", "source": "policy", "score": -1.0},
        ],
    },
    {
        "id": "b",
        "prompt": [{"role": "user", "content": "Q2"}],
        "responses": [
            {"text": "x", "source": "policy", "score": 0.5},
            {"text": "y", "source": "policy", "score": 0.5},
        ],
    },
    {"id": "c", "prompt": "Q3", "responses": [{"text": "only", "source": "policy", "score": 1.0}]},
    {
        "id": "d",
        "prompt": [{"role": "user", "content": "Q4"}],
        "responses": [
            {"text": "u", "source": "policy", "score": 0.2},
            {"text": "v", "source": "policy", "score": 0.9},
            {"text": "w", "source": "policy", "score": 0.9},
        ],
    },
]


def test_listwise_sorts_dedupes_and_counts_drops(tmp_path, write_jsonl, cli):
    out = tmp_path / "ranked.jsonl"
    result = cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", out)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["a", "d"]
    assert [r["text"] for r in rows[0]["responses"]] == ["great", "ok", "bad"]
    assert rows[0]["responses"][1] == {"text": "ok", "source": "human", "score": 2.0}
    assert rows[0]["pairs"] == [[0, 1], [0, 2], [1, 2]]
    assert rows[0]["topic"] == "t1"
    # Ties keep input order: v before w, and the tie between them is not a pair.
    assert [r["text"] for r in rows[1]["responses"]] == ["v", "w", "u"]
    assert rows[1]["pairs"] == [[0, 2], [1, 2]]
    counts = json.loads((tmp_path / "ranked.jsonl.meta.json").read_text())["counts"]
    assert counts == {
        "records": 2,
        "prompts_in": 4,
        "prompts_kept": 2,
        "pairs": 5,
        "dropped_no_signal": 2,
        "dropped_no_pair": 0,
        "duplicate_responses": 1,
        "cut_by_top_k": 0,
    }


def test_pairs_format_round_trips_through_the_trl_reader(tmp_path, write_jsonl, cli):
    out = tmp_path / "pairs.jsonl"
    result = cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", out, "--format", "pairs")
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 5
    assert rows[0] == {
        "id": "a/0>1",
        "prompt": "Q1",
        "chosen": "great",
        "rejected": "ok",
        "score_chosen": 3.0,
        "score_rejected": 2.0,
        "prompt_id": "a",
        "topic": "t1",
    }
    assert rows[3]["chosen"] == [{"role": "assistant", "content": "v"}]
    loaded = load_records(out)
    assert loaded.format == "trl-preference"
    for row, record in zip(rows, loaded.records, strict=True):
        assert record.id == row["id"] and record.extra["prompt_id"] == row["prompt_id"]
        chosen, rejected = record.responses
        assert (chosen.source, chosen.score) == ("chosen", row["score_chosen"])
        assert (rejected.source, rejected.score) == ("rejected", row["score_rejected"])
        assert chosen.score > rejected.score


def test_pair_rows_carry_where_the_token_limit_cut_an_answer(tmp_path, write_jsonl, cli):
    """A sampled answer's finish_reason rides along as finish_reason_chosen/_rejected, and the reader puts it
    back on the response, so training on pair rows still ends no cut answer; an answer without one adds none."""
    scored = [{"id": "a", "prompt": "Q", "responses": [
        {"text": "cut mid", "source": "policy", "score": 2.0, "finish_reason": "length"},
        {"text": "whole.", "source": "policy", "score": 1.0, "finish_reason": "stop"},
        {"text": "human", "source": "human", "score": 0.0}]}]
    out = tmp_path / "pairs.jsonl"
    assert cli("rank", write_jsonl("scored.jsonl", scored), "-o", out, "--format", "pairs").exit_code == 0
    rows = {row["id"]: row for row in read_jsonl(out)}
    assert (rows["a/0>1"]["finish_reason_chosen"], rows["a/0>1"]["finish_reason_rejected"]) == ("length", "stop")
    assert "finish_reason_rejected" not in rows["a/1>2"] and rows["a/1>2"]["finish_reason_chosen"] == "stop"
    ended = {record.id: [r.ended for r in record.responses] for record in load_records(out).records}
    assert ended == {"a/0>1": [False, True], "a/0>2": [False, True], "a/1>2": [True, True]}
    assert all("finish_reason_chosen" not in r.extra for r in load_records(out).records)


def test_margin_and_pair_modes(tmp_path, write_jsonl, cli):
    src = write_jsonl("scored.jsonl", SCORED)
    out = tmp_path / "r.jsonl"
    assert cli("rank", src, "-o", out, "--min-margin", "1.5").exit_code == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["a"]  # d's largest gap is 0.7
    assert rows[0]["pairs"] == [[0, 2], [1, 2]]
    counts = json.loads((tmp_path / "r.jsonl.meta.json").read_text())["counts"]
    assert counts["dropped_no_pair"] == 1
    assert cli("rank", src, "-o", out, "--pairs", "best-worst").exit_code == 0
    assert [r["pairs"] for r in read_jsonl(out)] == [[[0, 2]], [[0, 2]]]


def test_sampling_is_deterministic_under_a_seed(tmp_path, write_jsonl, cli):
    many = [
        {
            "id": f"p{i}",
            "prompt": f"Q{i}",
            "responses": [{"text": str(j), "source": "policy", "score": float((i * 5 + j * 3) % 7)} for j in range(6)],
        }
        for i in range(5)
    ]
    src = write_jsonl("many.jsonl", many)
    runs = []
    for seed in ("1", "1", "2"):
        out = tmp_path / f"r{len(runs)}.jsonl"
        assert cli("rank", src, "-o", out, "--max-pairs-per-prompt", "3", "--seed", seed).exit_code == 0
        runs.append([r["pairs"] for r in read_jsonl(out)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert all(len(p) == 3 for p in runs[0])


def test_normalize_keeps_the_raw_score(tmp_path, write_jsonl, cli):
    out = tmp_path / "r.jsonl"
    assert cli("rank", write_jsonl("s.jsonl", SCORED[:1]), "-o", out, "--normalize", "rank").exit_code == 0
    responses = read_jsonl(out)[0]["responses"]
    assert [(r["score"], r["raw_score"]) for r in responses] == [(1.0, 3.0), (0.5, 2.0), (0.0, -1.0)]


def test_missing_score_is_bad_input_and_output_is_untouched(tmp_path, write_jsonl, cli):
    rows = [SCORED[0], {"id": "z", "prompt": "Q", "responses": [{"text": "a", "score": 1.0}, {"text": "b"}]}]
    out = tmp_path / "ranked.jsonl"
    out.write_text("previous\n")
    src = write_jsonl("scored.jsonl", rows)
    result = cli("rank", src, "-o", out)
    assert result.exit_code == 2
    expected = f"rrhf: error: {src}:2: 'responses[1]' has no score; run `rrhf score` on this file first"
    assert result.stderr.strip() == expected
    assert out.read_text() == "previous\n"
    assert not (tmp_path / "ranked.jsonl.meta.json").exists()


def test_config_file_and_flags(tmp_path, write_jsonl, cli):
    config = tmp_path / "rank.yaml"
    config.write_text("format: pairs\npairs: best-worst\nmin-margin: 0.1\n")
    out = tmp_path / "p.jsonl"
    result = cli("rank", write_jsonl("s.jsonl", SCORED), "-o", out, "--config", config, "--pairs", "all")
    assert result.exit_code == 0, result.stderr
    meta = json.loads((tmp_path / "p.jsonl.meta.json").read_text())
    assert meta["config"]["format"] == "pairs" and meta["config"]["pairs"] == "all"
    assert meta["config"]["min_margin"] == 0.1
    assert len(read_jsonl(out)) == 5


@pytest.mark.parametrize("how", ["rewritten", "truncated", "appended"])
def test_an_input_changed_while_it_is_ranked_is_refused_and_nothing_written(how, tmp_path, write_jsonl, cli,
                                                                           monkeypatch):
    src = write_jsonl("scored.jsonl", SCORED)
    an_hour_ago = src.stat().st_mtime - 3600  # written before the run, as an input is
    os.utime(src, (an_hour_ago, an_hour_ago))
    data = src.read_bytes()
    changed = {"rewritten": data.replace(b"great", b"GREAT"), "truncated": data[: data.index(b"\n") + 1],
               "appended": data + json.dumps(SCORED[0] | {"id": "late"}).encode() + b"\n"}[how]
    rank_one = ranking_run.rank_one

    def changes_the_input_once_ranking(*args, **kwargs):
        if src.read_bytes() == data:  # while the first prompt is ranked
            with src.open("r+b") as handle:
                handle.truncate(0)
                handle.write(changed)
        return rank_one(*args, **kwargs)

    monkeypatch.setattr(ranking_run, "rank_one", changes_the_input_once_ranking)
    out = tmp_path / "ranked.jsonl"
    out.write_text("previous\n")
    result = cli("rank", src, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"rrhf: error: {src}: changed while it was read")
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "previous\n" and not (tmp_path / "ranked.jsonl.meta.json").exists()
