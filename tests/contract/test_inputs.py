"""Every reader and external format loads into validated contract records."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.contract.errors import BadInput
from stages.contract.formats import InputOptions
from stages.contract.ids import prompt_id
from stages.contract.inputs import InputFile, load_records
from stages.contract.meta import input_info
from stages.contract.readers import parse_hf_spec

ROWS = [
    {"prompt": "Say hi", "responses": [{"text": "hi", "source": "m", "score": 1.5}], "topic": "greeting"},
    {"prompt": [{"role": "user", "content": "Add 2+2"}], "responses": ["4"]},
]


def _records(path):
    return [r.to_json_dict() for r in load_records(path).records]


def test_jsonl_with_bom_and_blank_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n").encode())
    records = _records(path)
    assert records[0] == {"id": prompt_id("Say hi"), **ROWS[0]}
    assert records[1]["responses"] == [{"text": "4", "source": "input"}]
    assert records[1]["prompt"] == ROWS[1]["prompt"]


def test_json_array_csv_and_parquet_match_jsonl(tmp_path, write_jsonl):
    expected = _records(write_jsonl("in.jsonl", ROWS))
    (tmp_path / "in.json").write_text(json.dumps(ROWS), encoding="utf-8-sig")
    assert _records(tmp_path / "in.json") == expected

    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "prompt,responses,topic\n"
        + "\n".join(
            ",".join('"' + (v if isinstance(v, str) else json.dumps(v)).replace('"', '""') + '"' for v in row)
            for row in [
                ["Say hi", ROWS[0]["responses"], "greeting"],
                [ROWS[1]["prompt"], ROWS[1]["responses"], ""],
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    csv_records = _records(csv_path)
    assert csv_records[0] == expected[0]
    assert csv_records[1] == expected[1] | {"topic": None}

    table = pa.Table.from_pylist([{"prompt": "Say hi", "responses": ROWS[0]["responses"], "topic": "greeting"}])
    pq.write_table(table, tmp_path / "in.parquet")
    assert _records(tmp_path / "in.parquet") == [expected[0]]


def test_hf_dataset_from_a_local_folder(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "\n".join(json.dumps({"prompt": f"p{i}", "chosen": "a", "rejected": "b"}) for i in range(3)) + "\n"
    )
    loaded = load_records(f"hf:{folder}:train")
    assert loaded.format == "trl-preference"
    assert [r.prompt for r in loaded.records] == ["p0", "p1", "p2"]
    assert loaded.sha256 is not None  # the prepared files, hashed: test_an_hf_dataset_is_named_by_what_it_holds


def test_hf_dataset_unreachable_is_one_line(monkeypatch):
    with pytest.raises(Exception) as info:
        load_records("hf:no-such-org/no-such-dataset")
    message = str(info.value)
    assert "hf:no-such-org/no-such-dataset" in message and "\n" not in message


def test_ids_are_stable_and_repeats_are_numbered(write_jsonl):
    path = write_jsonl("in.jsonl", [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}])
    ids = [r.id for r in load_records(path).records]
    assert ids == [prompt_id("a"), prompt_id("b"), prompt_id("a") + "-2"]
    assert [r.id for r in load_records(path).records] == ids


def test_given_ids_are_kept_and_integers_become_strings(write_jsonl):
    path = write_jsonl("in.jsonl", [{"id": 7, "prompt": "a"}, {"id": "x", "prompt": "b"}])
    assert [r.id for r in load_records(path).records] == ["7", "x"]


def test_forced_format_applies_to_every_row(write_jsonl):
    path = write_jsonl("in.jsonl", [{"prompt": "a", "chosen": "c", "rejected": "r"}, {"prompt": "b"}])
    with pytest.raises(BadInput, match=r"in\.jsonl:2: 'chosen' must be a string"):
        load_records(path, InputOptions(format="trl-preference"))


def test_every_external_format_round_trips_into_the_contract(tmp_path, write_jsonl):
    hh = {"chosen": "\n\nHuman: Q\n\nAssistant: good", "rejected": "\n\nHuman: Q\n\nAssistant: bad"}
    cases = {
        "reference": ({"query": "Q", "responses": ["good", "bad"], "scores": [1, 0]}, "Q"),
        "pref": ({"prompt": "Q", "chosen": "good", "rejected": "bad"}, "Q"),
        "prompt": ({"prompt": "Q"}, "Q"),
        "hh": (hh, [{"role": "user", "content": "Q"}]),
    }
    for name, (row, prompt) in cases.items():
        loaded = load_records(write_jsonl(f"{name}.jsonl", [row]))
        record = loaded.records[0]
        assert record.prompt == prompt or [m.model_dump() for m in record.prompt] == prompt
        # The contract form of a record loads back to itself.
        again = load_records(write_jsonl(f"{name}-contract.jsonl", [record.to_json_dict()]))
        assert again.format in ("rrhf", "trl-prompt")
        assert again.records[0].to_json_dict() == record.to_json_dict()
        if name != "prompt":
            assert [r.text for r in record.responses] == ["good", "bad"]


def test_missing_file_is_bad_input(tmp_path: Path):
    with pytest.raises(BadInput, match="no such file"):
        load_records(tmp_path / "nope.jsonl")


def test_hf_spec_names_a_config_and_a_sliced_split():
    assert parse_hf_spec("hf:openai/gsm8k") == ("openai/gsm8k", None, None)
    assert parse_hf_spec("hf:openai/gsm8k:test") == ("openai/gsm8k", None, "test")
    assert parse_hf_spec("hf:openai/gsm8k:main:train[:2000]") == ("openai/gsm8k", "main", "train[:2000]")
    assert parse_hf_spec("hf:d:train[10:20]") == ("d", None, "train[10:20]")
    for bad in ("hf:", "hf:d::train", "hf:a:b:c:d"):
        with pytest.raises(ValueError, match="hf:NAME:CONFIG:SPLIT"):
            parse_hf_spec(bad)


@pytest.fixture
def gsm_like(tmp_path):
    """A local dataset folder laid out as gsm8k is on the hub: configs `main` and `other` of parquet files,
    declared in README.md; `datasets` loads it offline by its path."""
    folder = tmp_path / "gsm"
    for config, split, n in (("main", "train", 5), ("main", "test", 3), ("other", "train", 2)):
        (folder / config).mkdir(parents=True, exist_ok=True)
        rows = [{"question": f"{config}-{split}-{i}", "pos": "yes", "neg": "no"} for i in range(n)]
        pq.write_table(pa.Table.from_pylist(rows), folder / config / f"{split}-00000.parquet")
    (folder / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*.parquet\n"
        "  - split: test\n    path: main/test-*.parquet\n"
        "- config_name: other\n  data_files:\n  - split: train\n    path: other/train-*.parquet\n---\n"
    )
    return folder


def test_hf_config_split_slicing_prompt_field_and_limit(gsm_like):
    question = InputOptions(fields={"prompt": "question"})
    prompts = lambda spec, options=question: [r.prompt for r in load_records(spec, options).records]  # noqa: E731
    assert prompts(f"hf:{gsm_like}:main:test") == ["main-test-0", "main-test-1", "main-test-2"]
    assert prompts(f"hf:{gsm_like}:main:train[1:3]") == ["main-train-1", "main-train-2"]
    assert prompts(f"hf:{gsm_like}:other") == ["other-train-0", "other-train-1"], "no split 'other': a config"
    assert prompts(f"hf:{gsm_like}:main", InputOptions(fields={"prompt": "question"}, limit=2)) == [
        "main-train-0", "main-train-1"
    ]
    pairs = load_records(f"hf:{gsm_like}:main:test", InputOptions(fields={"prompt": "question", "chosen": "pos",
                                                                          "rejected": "neg"}, limit=1))
    assert pairs.format == "trl-preference"
    assert [(r.text, r.source) for r in pairs.records[0].responses] == [("yes", "chosen"), ("no", "rejected")]
    assert input_info(pairs.summary).options == {"fields": {"prompt": "question", "chosen": "pos", "rejected": "neg"},
                                         "limit": 1}
    with pytest.raises(BadInput, match="cannot load dataset .* split 'nope'"):
        load_records(f"hf:{gsm_like}:main:nope", question)
    with pytest.raises(BadInput, match=r"gsm:main:test: row 1: cannot tell the input format .*\(neg, pos, question\)"):
        load_records(f"hf:{gsm_like}:main:test")


def test_input_flags_on_the_command_line(gsm_like, cli):
    result = cli("inspect", f"hf:{gsm_like}:main:train[:4]", "--prompt-field", "question", "--limit", "3", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["records"] == 3
    result = cli("inspect", f"hf:{gsm_like}:main", "--field", "answer=pos")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "rrhf: error: --field 'answer=pos': 'answer' is not a field; choose one of prompt, responses, chosen, "
        "rejected, query, scores, score_chosen, score_rejected, id"
    ]


def test_invalid_unicode_and_deep_nesting_are_bad_input_in_every_text_format(tmp_path):
    # JSON escapes a lone surrogate as \\ud800: it decodes, but no UTF-8 writer (or the id's hash) can encode it.
    (tmp_path / "in.json").write_text('[{"prompt": "a"},\n {"prompt": [{"role": "user", "content": "\\udfff"}]}]')
    with pytest.raises(BadInput, match=r"in\.json: item 2: 'prompt\[0\]\.content' holds invalid Unicode"):
        load_records(tmp_path / "in.json")
    (tmp_path / "in.csv").write_text('prompt,responses\nhi,"[""ok"", ""\\ud800""]"\n')
    with pytest.raises(BadInput, match=r"in\.csv:2: 'responses\[1\]' holds invalid Unicode \(a lone surrogate\)"):
        load_records(tmp_path / "in.csv")
    (tmp_path / "key.jsonl").write_text('{"prompt": "a", "\\ud800": 1}\n')
    with pytest.raises(BadInput, match=r"key\.jsonl:1: a field name in the record holds invalid Unicode"):
        load_records(tmp_path / "key.jsonl")

    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text('[{"prompt": "a"},\n\n {"prompt": "[[[", "x": ' + deep + "}]")
    with pytest.raises(BadInput, match=r"deep\.json:3: nested too deeply \(more than 100 levels\)"):
        load_records(tmp_path / "deep.json")
    (tmp_path / "deep.csv").write_text(f"prompt,x\nhi,{deep}\n")
    with pytest.raises(BadInput, match=r"deep\.csv:2: column 'x' is nested too deeply"):
        load_records(tmp_path / "deep.csv")
    (tmp_path / "long.csv").write_text("prompt\n" + "x" * 200_000 + "\n")  # past the csv module's 128 KiB default
    assert len(load_records(tmp_path / "long.csv").records[0].prompt) == 200_000


def test_nesting_is_refused_past_100_levels_even_where_json_decodes_it(tmp_path):
    # 99 lists inside the record's object are 100 levels: kept, and written back out whole.
    ok = {"prompt": "a", "x": json.loads("[" * 99 + "]" * 99), "emoji": "\U0001f600"}
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(ok) + "\n" + json.dumps({"prompt": "b", "x": json.loads("[" * 100 + "]" * 100)}))
    with pytest.raises(BadInput, match=r"ok\.jsonl:2: nested too deeply"):
        load_records(path)
    path.write_text(json.dumps(ok) + "\n")
    assert _records(path)[0] == {"id": prompt_id("a"), **ok, "responses": []}


def test_integers_beyond_64_bits_round_trip_exactly(tmp_path):
    # orjson reads such an integer as a float; the reader takes the line through the standard library instead.
    from stages.contract.artifacts import write_records

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 12345678901234567890123, "prompt": "p", "serial": 98765432109876543210987}\n')
    loaded = load_records(src)
    out = tmp_path / "out.jsonl"
    write_records(out, loaded.records)
    expected = '{"id":"12345678901234567890123","prompt":"p","responses":[],"serial":98765432109876543210987}\n'
    assert out.read_text() == expected


def test_an_hf_dataset_is_named_by_what_it_holds(gsm_like):
    """A dataset revised under the same name is another input: its hash covers the prepared files, and the slice."""
    spec, question = f"hf:{gsm_like}:main:test", InputOptions(fields={"prompt": "question"})
    first = InputFile(spec, question).scan().sha256
    assert first is not None and InputFile(spec, question).scan().sha256 == first
    assert InputFile(spec, question).content_sha256() == first
    assert InputFile(f"hf:{gsm_like}:main:test[:2]", question).scan().sha256 != first


def test_an_hf_digest_covers_the_prepared_files(tmp_path):
    """What a hub revision changes: the Arrow files `datasets` prepared (a local folder's own files it does not
    watch, datasets issue #2956, so this is checked on the files themselves)."""
    from types import SimpleNamespace

    from stages.contract.readers import hf_digest

    arrow = tmp_path / "data-00000.arrow"
    arrow.write_bytes(b"revision 1")
    dataset = SimpleNamespace(cache_files=[{"filename": str(arrow)}, {"filename": str(arrow)}])
    first = hf_digest("hf:d:train", dataset)
    assert hf_digest("hf:d:train", dataset) == first and hf_digest("hf:d:test", dataset) != first
    arrow.write_bytes(b"revision 2")
    assert hf_digest("hf:d:train", dataset) != first
    assert hf_digest("hf:d:train", SimpleNamespace(cache_files=[])) is None
