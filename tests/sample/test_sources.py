"""Candidate sets from many sources: --include-field, --append, `rrhf merge`, --shard, and bad settings."""

import json

import pytest

from stages.contract.meta import REDACTED, redact
from tests.conftest import read_jsonl

HH = [
    {
        "chosen": "\n\nHuman: Name a fish.\n\nAssistant: Goldie.",
        "rejected": "\n\nHuman: Name a fish.\n\nAssistant: No.",
    },
    {
        "chosen": "\n\nHuman: Say hi.\n\nAssistant: Hi there!",
        "rejected": "\n\nHuman: Say hi.\n\nAssistant: Go away.",
    },
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _args(tiny_models, *more):
    return ["--model", tiny_models.policy, "-k", "2", "--max-new-tokens", "4", *more]


def test_include_field_carries_hh_chosen_and_rejected(tiny_models, tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    src = write_jsonl("hh.jsonl", HH)
    result = cli("sample", src, "-o", out, *_args(tiny_models, "--include-field", "chosen,rejected", "--source", "p"))
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Name a fish."}]
    assert [(r["source"], r["text"]) for r in rows[0]["responses"][:2]] == [("chosen", "Goldie."), ("rejected", "No.")]
    assert [r["source"] for r in rows[1]["responses"]] == ["chosen", "rejected", "p", "p"]
    counts = json.loads((tmp_path / "s.jsonl.meta.json").read_text())["counts"]
    assert counts["responses_included"] == 4 and counts["input_responses_dropped"] == 0

    only_chosen = tmp_path / "c.jsonl"
    assert cli("sample", src, "-o", only_chosen, *_args(tiny_models, "--include-field", "chosen")).exit_code == 0
    assert [r["source"] for r in read_jsonl(only_chosen)[0]["responses"]][0] == "chosen"
    counts = json.loads((tmp_path / "c.jsonl.meta.json").read_text())["counts"]
    assert counts["responses_included"] == 2 and counts["input_responses_dropped"] == 2


def test_include_field_reads_a_field_allows_null_and_rejects_a_missing_one(tiny_models, tmp_path, write_jsonl, cli):
    rows = [
        {"id": "a", "prompt": "Q1", "human": "A human answer", "refs": ["r1", "r2"]},
        {"id": "b", "prompt": "Q2", "human": "Another", "refs": ["r3"]},
    ]
    out = tmp_path / "s.jsonl"
    result = cli(
        "sample", write_jsonl("p.jsonl", rows), "-o", out, *_args(tiny_models, "--include-field", "human,refs")
    )
    assert result.exit_code == 0, result.stderr
    got = read_jsonl(out)
    assert [(r["source"], r["text"]) for r in got[0]["responses"][:3]] == [
        ("human", "A human answer"),
        ("refs", "r1"),
        ("refs", "r2"),
    ]
    assert got[0]["human"] == "A human answer"  # the field itself is carried as before

    # A source that answered some prompts only: null or [] where it has none, and those prompts carry nothing.
    rows[1]["human"], rows[1]["refs"] = None, []
    partial = tmp_path / "partial.jsonl"
    args = _args(tiny_models, "--include-field", "human,refs", "--source", "p")
    assert cli("sample", write_jsonl("partial-in.jsonl", rows), "-o", partial, *args).exit_code == 0
    assert [[r["source"] for r in row["responses"]] for row in read_jsonl(partial)] == [
        ["human", "refs", "refs", "p", "p"],
        ["p", "p"],
    ]

    rows[1].pop("human")
    out.write_text("previous\n")
    src = write_jsonl("bad.jsonl", rows)
    result = cli("sample", src, "-o", out, *_args(tiny_models, "--include-field", "human"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"rrhf: error: {src}:2: --include-field 'human'")
    assert out.read_text() == "previous\n"


def test_append_adds_a_second_source_by_id_and_is_idempotent(tiny_models, tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    first = write_jsonl("p1.jsonl", [{"id": "a", "prompt": "Q1"}, {"id": "b", "prompt": "Q2"}])
    assert cli("sample", first, "-o", out, *_args(tiny_models, "--source", "m1")).exit_code == 0
    second = write_jsonl("p2.jsonl", [{"id": "b", "prompt": "Q2"}, {"id": "c", "prompt": "Q3"}])
    append = _args(tiny_models, "--source", "m2", "--append", "-k", "3")
    result = cli("sample", second, "-o", out, *append)
    assert result.exit_code == 0, result.stderr
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert list(rows) == ["a", "b", "c"]
    assert [r["source"] for r in rows["a"]["responses"]] == ["m1", "m1"]
    assert [r["source"] for r in rows["b"]["responses"]] == ["m1", "m1", "m2", "m2", "m2"]
    assert [r["source"] for r in rows["c"]["responses"]] == ["m2", "m2", "m2"]
    meta = json.loads((tmp_path / "s.jsonl.meta.json").read_text())
    assert meta["counts"]["records_before"] == 2 and meta["counts"]["records"] == 3
    assert [i["path"] for i in meta["inputs"]] == [str(second), str(out)]

    # The same append again draws the same responses (same seed): nothing is added twice.
    before = out.read_text()
    assert cli("sample", second, "-o", out, *append).exit_code == 0
    assert out.read_text() == before
    assert json.loads((tmp_path / "s.jsonl.meta.json").read_text())["counts"]["duplicates_dropped"] == 6

    clash = write_jsonl("p3.jsonl", [{"id": "a", "prompt": "Something else"}])
    result = cli("sample", clash, "-o", out, *append)
    assert result.exit_code == 2 and "with a different prompt" in result.stderr
    assert out.read_text() == before


def test_merge_joins_by_id_dedupes_and_keeps_scores(tmp_path, write_jsonl, cli):
    a = write_jsonl(
        "a.jsonl",
        [
            {"id": "1", "prompt": "Q1", "topic": "x", "responses": [{"text": "t1", "source": "m1", "score": 1.0}]},
            {"id": "2", "prompt": "Q2", "responses": [{"text": "t2", "source": "m1"}, {"text": "t2", "source": "m1"}]},
        ],
    )
    b = write_jsonl(
        "b.jsonl",
        [
            {"id": "3", "prompt": "Q3", "responses": [{"text": "t3", "source": "m2"}]},
            {
                "id": "1",
                "prompt": "Q1",
                "topic": "y",
                "lang": "en",
                "responses": [
                    {"text": "t1", "source": "m1", "score": 5.0},
                    {"text": "t1", "source": "m2", "score": 2.0},
                ],
            },
        ],
    )
    out = tmp_path / "m.jsonl"
    result = cli("merge", a, b, "-o", out)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["topic"] == "x" and rows[0]["lang"] == "en"
    assert rows[0]["responses"] == [
        {"text": "t1", "source": "m1", "score": 1.0},
        {"text": "t1", "source": "m2", "score": 2.0},
    ]
    assert len(rows[1]["responses"]) == 2  # repeats within one file are the sampler's, and are kept
    meta = json.loads((tmp_path / "m.jsonl.meta.json").read_text())
    assert meta["stage"] == "merge" and meta["counts"]["duplicates_dropped"] == 1
    assert meta["counts"]["records_joined"] == 1 and [i["path"] for i in meta["inputs"]] == [str(a), str(b)]

    assert cli("merge", a, b, "-o", out, "--no-dedupe").exit_code == 0
    assert len(read_jsonl(out)[0]["responses"]) == 3
    clash = write_jsonl("c.jsonl", [{"id": "2", "prompt": "Other", "responses": []}])
    result = cli("merge", a, clash, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: {clash}:1: id '2' was already joined with a different prompt"


def test_shards_merged_equal_the_unsharded_run(tiny_models, tmp_path, write_jsonl, cli):
    src = write_jsonl("p.jsonl", [{"prompt": f"Question {i}?"} for i in range(7)])
    whole = tmp_path / "whole.jsonl"
    assert cli("sample", src, "-o", whole, *_args(tiny_models)).exit_code == 0
    parts = []
    for index in range(3):
        part = tmp_path / f"part{index}.jsonl"
        result = cli("sample", src, "-o", part, *_args(tiny_models, "--shard", f"{index}/3"))
        assert result.exit_code == 0, result.stderr
        parts.append(part)
    sizes = [len(read_jsonl(p)) for p in parts]
    assert sizes == [3, 2, 2]
    merged = tmp_path / "merged.jsonl"
    assert cli("merge", *parts, "-o", merged).exit_code == 0
    merged_rows = read_jsonl(merged)
    assert sorted(r["id"] for r in merged_rows) == sorted(r["id"] for r in read_jsonl(whole))
    assert all(len(r["responses"]) == 2 for r in merged_rows)
    result = cli("sample", src, "-o", tmp_path / "x.jsonl", *_args(tiny_models, "--shard", "9/10"))
    assert result.exit_code == 2 and "holds no prompt" in result.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--engine", "openai", "--strategy", "beam"], "--strategy: 'beam' is not available with --engine openai"),
        (["--strategy", "diverse-beam", "-k", "1"], "'diverse-beam' needs -k 2 or more"),
        (["--engine", "tgi"], "--engine: 'tgi' is not an engine; choose one of hf, vllm, openai"),
        (["--shard", "3/2"], "--shard: '3/2' is not I/N with 0 <= I < N"),
        (["--engine", "openai", "--max-prompt-tokens", "8"], "--max-prompt-tokens: needs a local tokenizer"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(flags, expected, tmp_path, write_jsonl, cli):
    out = tmp_path / "s.jsonl"
    result = cli("sample", write_jsonl("p.jsonl", [{"prompt": "Q"}]), "-o", out, "--model", "m", *flags)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
    assert not out.exists()


def test_all_bad_settings_are_reported_at_once(tmp_path, write_jsonl, cli):
    flags = ["--engine", "openai", "--strategy", "beam", "--shard", "2/2", "--top-p", "0"]
    result = cli(
        "sample", write_jsonl("p.jsonl", [{"prompt": "Q"}]), "-o", tmp_path / "s.jsonl", "--model", "m", *flags
    )
    assert result.exit_code == 2
    for flag in ("--strategy", "--shard", "--top-p"):
        assert flag in result.stderr


def test_token_limits_are_kept_in_the_meta_while_tokens_are_redacted():
    config = {"max_new_tokens": 64, "max_prompt_tokens": 512, "tokenizer": "gpt2", "hf_token": "abc", "token": "x"}
    assert redact(config) == {
        "max_new_tokens": 64,
        "max_prompt_tokens": 512,
        "tokenizer": "gpt2",
        "hf_token": REDACTED,
        "token": REDACTED,
    }


def test_merge_of_three_inputs_streams_in_order_of_first_appearance(tmp_path, write_jsonl, cli):
    # Later inputs are parked on disk and joined by id: ids only they hold follow the first input's, in order of
    # first appearance, and a clash in a CSV input is named at its line.
    a = write_jsonl("a.jsonl", [{"id": i, "prompt": f"Q{i}", "responses": ["a"]} for i in ("5", "1", "3")])
    b = write_jsonl("b.jsonl", [{"id": i, "prompt": f"Q{i}", "responses": ["b"]} for i in ("4", "3", "9", "5")])
    c = tmp_path / "c.csv"
    c.write_text('id,prompt,responses\n9,Q9,"[""c""]"\n7,Q7,"[""c""]"\n4,Q4,"[""c"", ""b""]"\n')
    out = tmp_path / "m.jsonl"
    result = cli("merge", a, b, c, "-o", out)
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["5", "1", "3", "4", "9", "7"]
    assert [[x["text"] for x in r["responses"]] for r in rows] == [
        ["a", "b"], ["a"], ["a", "b"], ["b", "c"], ["b", "c"], ["c"]]
    counts = json.loads((tmp_path / "m.jsonl.meta.json").read_text())["counts"]
    assert counts | {"records": 6} == {"records": 6, "inputs": 3, "records_in": 10, "records_joined": 4,
                                       "responses": 10, "duplicates_dropped": 1}
    c.write_text('id,prompt,responses\n9,Q9,"[""c""]"\n3,Other,"[""c""]"\n')
    before = out.read_bytes()
    result = cli("merge", a, b, c, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: {c}:3: id '3' was already joined with a different prompt"
    assert out.read_bytes() == before


def test_the_former_backend_flag_and_config_key_are_the_engine_and_say_so(tmp_path, write_jsonl, cli):
    prompts = write_jsonl("p.jsonl", [{"prompt": "Hi"}])
    result = cli("sample", prompts, "-o", tmp_path / "s.jsonl", "--model", "m", "--backend", "tgi")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "rrhf: --backend is deprecated; use --engine (kept until 0.2)",
        "rrhf: error: invalid settings: --engine: 'tgi' is not an engine; choose one of hf, vllm, openai",
    ]
    config = tmp_path / "sample.yaml"
    config.write_text("model: m\nbackend: tgi\n")
    result = cli("sample", prompts, "-o", tmp_path / "s.jsonl", "--config", config)
    assert result.stderr.splitlines()[0] == "rrhf: config key 'backend' is deprecated; use 'engine' (kept until 0.2)"
    assert "--engine: 'tgi' is not an engine" in result.stderr
