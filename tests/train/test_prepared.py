"""Train data prepared once: the same queries and counts as tokenising each query's texts one at a time as a policy
reads them (`policy_query`), reused by a rerun and a resume without tokenising, never reused when a preparation was
cut short, and bad input still named by line."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from stages.contract.errors import BadInput, RrhfError
from stages.contract.inputs import InputFile, load_records
from stages.contract.schema import Message, Response
from stages.lm.packing import token_counts
from stages.lm.queries import Query, policy_query
from stages.runtime.launch import Launch
from stages.train import cache, dataset, prepare, tokenise
from stages.train import run as train_run
from stages.train.cache import prepared_data
from tests.conftest import read_jsonl

LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

# Runs `rrhf ARGS...` with one query per tokenizer call and SIGKILLs it as it tokenises the second batch.
KILLED_MID_PREPARATION = """
import os, signal, sys
from stages.train import prepare, tokenise
prepare.BATCH = 1
tokenise_batch, calls = tokenise.tokenise, []
def killed(*args):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return tokenise_batch(*args)
tokenise.tokenise = killed
from rrhf_cli.app import app
app(args=sys.argv[1:], prog_name="rrhf")
"""


def _scored_rows() -> list[dict]:
    scores = [{"text": "hello there", "score": 1.0}, {"text": LONG, "score": 0.5}, {"text": "no", "score": 0.0}]
    return [
        # A response the sampler's token limit cut is learned without EOS.
        {"id": "a", "prompt": "Say hello.",
         "responses": [*scores, {"text": "hi", "score": 0.7, "finish_reason": "length"}]},
        {"id": "b", "prompt": LONG + " " + LONG, "responses": scores[:2]},  # a prompt cut on the left
        {"id": "c", "prompt": CHAT, "responses": scores, "pairs": [[2, 0]]},  # rank's pairs, not all of them
        {"id": "d", "prompt": "", "responses": [{"text": "x", "score": 1.0}, {"text": "x", "score": 1.0}]},
        {"id": "e", "prompt": "Tie.", "responses": scores, "pairs": []},
    ]


def _one_at_a_time(path: Path, tokenizer, max_length: int, workdir: Path) -> tuple[list[Query], Counter[str]]:
    """The queries of the file at `path` (`prepare.candidates`), each tokenised on its own by `policy_query`, with
    the ranking pairs of one epoch, the prompts left-truncated and the responses cut to fit `max_length`."""
    counts: Counter[str] = Counter()
    queries = []
    for candidate in prepare.candidates(InputFile(path).read(), workdir):
        prompt = candidate.prompt
        if not isinstance(prompt, str):  # a grouped preference row's prompt is plain JSON
            prompt = [m if isinstance(m, Message) else Message.model_validate(m) for m in prompt]
        responses = [Response(text=text, finish_reason=None if done else "length")
                     for text, done in zip(candidate.texts, candidate.endings(), strict=True)]
        query, prompt_cut, responses_cut = policy_query(tokenizer, prompt, responses, max_length)
        query.rewards, query.pairs = candidate.rewards, candidate.pairs
        counts["pairs"] += len(query.ranking_pairs())
        counts["prompts_truncated"] += int(prompt_cut)
        counts["responses_truncated"] += responses_cut
        counts["responses_unended"] += candidate.endings().count(False)
        queries.append(query)
    return queries, counts


def _preference_rows() -> list[dict]:
    # Rows of one prompt scattered through the file, grouped by prompt_id too, one row with equal texts.
    return [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "q", "chosen": "x", "rejected": LONG},
        {"prompt": "p", "chosen": "a", "rejected": "c"},
        {"prompt": "r", "prompt_id": "k", "chosen": "m", "rejected": "n", "score_chosen": 2.0, "score_rejected": 1.0},
        {"prompt": "s", "chosen": "u", "rejected": "u"},
        {"prompt": LONG + " " + LONG, "chosen": "yes", "rejected": "no"},
        {"prompt": "p", "chosen": "b", "rejected": "c"},
        {"prompt": "r2", "prompt_id": "k", "chosen": "n", "rejected": "o", "score_chosen": 1.0, "score_rejected": 0.0},
        {"prompt": CHAT, "chosen": [{"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "assistant", "content": "Go away."}]},
    ]


@pytest.mark.parametrize("workers", [False, True], ids=["here", "workers"])
@pytest.mark.parametrize("rows", [_scored_rows(), _preference_rows()], ids=["scored", "preference"])
def test_prepared_queries_and_counts_equal_one_at_a_time(tiny_models, write_jsonl, monkeypatch, tmp_path, rows,
                                                          workers):
    """Tokenised here or by worker processes (on a machine of two cores or more)."""
    monkeypatch.setattr(prepare, "BATCH", 2)  # batches and groups that straddle them
    monkeypatch.setattr(prepare, "GROUP_CHUNK", 3)
    monkeypatch.setattr(tokenise, "POOL_BYTES", 0 if workers else 2**40)
    path = write_jsonl("input.jsonl", rows)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    loaded = load_records(path)
    expected, counts = _one_at_a_time(path, tokenizer, 48, tmp_path)
    assert counts["prompts_truncated"] and counts["responses_truncated"]  # the cuts are exercised
    assert counts["responses_unended"] == sum(r.get("finish_reason") == "length" for row in rows
                                              for r in row.get("responses", []))

    data, read = prepared_data(InputFile(path), tokenizer, 48, Launch())
    info = data.info.counts
    assert list(data) == expected
    assert {name: getattr(info, name) for name in counts} == dict(counts)
    assert info.queries == len(expected)
    assert info.responses == sum(len(q.responses) for q in expected)
    assert (info.tokens_unpacked, info.tokens_packed) == token_counts(expected)
    assert read == loaded.summary
    assert data.sample(3) == [expected[i * len(expected) // 3] for i in range(3)]


def _train(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(source), "-o", str(out), "--model", str(model), "--lr", "1e-3", "--logging-steps", "1",
            *extra]


def test_a_rerun_and_a_resume_reuse_the_prepared_data(tiny_models, write_jsonl, tmp_path, cli, monkeypatch,
                                                       rrhf_cache):
    scored = write_jsonl("scored.jsonl", _scored_rows())
    first = cli(*_train(tiny_models.policy, scored, tmp_path / "one", "--max-steps", "2", "--save-steps", "1"))
    assert first.exit_code == 0, first.stderr
    assert "train: prepared 5 queries from 5 records" in first.stderr
    (folder,) = (rrhf_cache / "train-data").iterdir()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def no_tokenising(*args):
        raise AssertionError("the prepared data was tokenised again")

    monkeypatch.setattr(tokenise, "tokenise", no_tokenising)
    again = cli(*_train(tiny_models.policy, scored, tmp_path / "two", "--max-steps", "2"))
    assert again.exit_code == 0, again.stderr
    assert f"train: reusing prepared data from {folder}" in again.stderr
    assert [m["loss"] for m in read_jsonl(tmp_path / "two" / "metrics.jsonl")] == [
        m["loss"] for m in read_jsonl(tmp_path / "one" / "metrics.jsonl")]
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["inputs"][0]["format"] == "rrhf" and meta["inputs"][0]["records"] == 5
    assert meta["counts"] == json.loads((tmp_path / "one" / "meta.json").read_text())["counts"]

    resumed = cli(*_train(tiny_models.policy, scored, tmp_path / "one", "--max-steps", "3", "--resume"))
    assert resumed.exit_code == 0, resumed.stderr
    assert "reusing prepared data" in resumed.stderr
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert [p.name for p in (rrhf_cache / "train-data").iterdir()] == [folder.name]


def test_a_preparation_cut_short_is_never_reused(tiny_models, write_jsonl, tmp_path, cli, rrhf_cache):
    scored = write_jsonl("scored.jsonl", _scored_rows())
    args = _train(tiny_models.policy, scored, tmp_path / "out", "--max-steps", "1")
    killed = subprocess.Popen([sys.executable, "-c", KILLED_MID_PREPARATION, *args], stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, stderr[-3000:]
    (left,) = (rrhf_cache / "train-data").iterdir()  # only the hidden folder it was preparing in
    assert left.name.startswith(".") and left.name.endswith(f".{killed.pid}.tmp")
    assert (left / dataset.DATA_FILE).stat().st_size > 0

    rerun = cli(*args)
    assert rerun.exit_code == 0, rerun.stderr
    assert "reusing" not in rerun.stderr and "train: prepared 5 queries" in rerun.stderr
    (folder,) = (rrhf_cache / "train-data").iterdir()  # what the killed run left is gone
    assert not folder.name.startswith(".")

    # A published folder that lost part of its data (a disk repaired, a copy cut short) is prepared again.
    data = folder / dataset.DATA_FILE
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    repaired = cli(*_train(tiny_models.policy, scored, tmp_path / "other", "--max-steps", "1"))
    assert repaired.exit_code == 0, repaired.stderr
    assert "reusing" not in repaired.stderr and "train: prepared 5 queries" in repaired.stderr
    assert dataset.complete(folder).counts.queries == 5


@pytest.mark.parametrize("kind", ["scored", "preference"])
def test_bad_input_is_one_line_naming_its_line_and_leaves_nothing(tiny_models, write_jsonl, tmp_path, cli, monkeypatch,
                                                                  rrhf_cache, kind):
    monkeypatch.setattr(prepare, "BATCH", 1)  # the bad record comes after a batch was written
    if kind == "scored":
        rows = _scored_rows()[:2] + [{"id": "z", "prompt": "Q", "responses": [{"text": "x", "score": 1.0},
                                                                              {"text": "y"}]}]
        problem = "'responses[1]' has no score; run `rrhf score` on this file first"
    else:
        rows = _preference_rows()[:2] + [{"prompt": "p", "chosen": "a", "rejected": 3}]
        problem = "'rejected' must be a string, as the prompt is; got a number"
    source = write_jsonl("input.jsonl", rows)
    out = tmp_path / "out"
    result = cli(*_train(tiny_models.policy, source, out, "--max-steps", "1"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: {source}:3: {problem}"
    assert not out.exists()
    assert list((rrhf_cache / "train-data").iterdir()) == []


def test_an_input_rewritten_after_the_run_hashed_it_never_poisons_the_cache(tiny_models, write_jsonl, rrhf_cache):
    path = write_jsonl("scored.jsonl", _scored_rows())
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    source = InputFile(path)
    recorded = source.content_sha256()  # what a run records when it starts
    write_jsonl("scored.jsonl", _scored_rows()[:3])  # rewritten before the data is prepared
    with pytest.raises(BadInput, match=f"^{path}: changed while it was read"):
        prepared_data(source, tokenizer, 64, Launch(), sha256=recorded)
    assert list((rrhf_cache / "train-data").iterdir()) == []  # nothing kept, under either hash

    other, other_read = prepared_data(source, tokenizer, 64, Launch())  # a run on the new content
    assert (other_read.count, len(other)) == (3, 3) and other_read.sha256 != recorded

    write_jsonl("scored.jsonl", _scored_rows())  # the original content again: its own data, never the other's
    data, read = prepared_data(source, tokenizer, 64, Launch(), sha256=recorded)
    assert (read.sha256, read.count, len(data)) == (recorded, 5, 5) and data.folder != other.folder
    assert sorted(p.name for p in (rrhf_cache / "train-data").iterdir()) == sorted([data.folder.name,
                                                                                  other.folder.name])


def test_train_refuses_an_input_rewritten_while_the_tokenizer_loads(tiny_models, write_jsonl, tmp_path, cli,
                                                                    monkeypatch, rrhf_cache):
    scored = write_jsonl("scored.jsonl", _scored_rows())
    load = train_run.load_pretrained

    def rewrites_the_input(*args, **kwargs):
        write_jsonl("scored.jsonl", _scored_rows()[:3])
        return load(*args, **kwargs)

    monkeypatch.setattr(train_run, "load_pretrained", rewrites_the_input)
    out = tmp_path / "out"
    refused = cli(*_train(tiny_models.policy, scored, out, "--max-steps", "1"))
    assert refused.exit_code == 2
    assert refused.stderr.strip().startswith(f"rrhf: error: {scored}: changed while it was read")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not out.exists() and list((rrhf_cache / "train-data").iterdir()) == []


def test_other_ranks_wait_for_the_first_ones_data(tiny_models, write_jsonl, monkeypatch):
    path = write_jsonl("scored.jsonl", _scored_rows())
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.policy)
    monkeypatch.setattr(cache, "WAIT_SECONDS", 0.2)
    with pytest.raises(RrhfError, match=r"not prepared within 0.2 s .*local rank 0"):
        prepared_data(InputFile(path), tokenizer, 64, Launch(rank=1, world_size=2, local_rank=1))
    first, _ = prepared_data(InputFile(path), tokenizer, 64, Launch(rank=0, world_size=2))
    second, read = prepared_data(InputFile(path), tokenizer, 64, Launch(rank=1, world_size=2, local_rank=1))
    assert list(second) == list(first) and (read.format, read.count) == ("rrhf", 5)


def test_the_prepared_info_reads_back_as_written_and_a_stranger_reads_as_none(tmp_path):
    info = dataset.PreparedInfo("rrhf", 5, tokenise.Counts(queries=5, responses=12, pairs=9, tokens_unpacked=80,
                                                            tokens_packed=50))
    info.write(tmp_path)
    assert dataset.PreparedInfo.read(tmp_path) == info
    written = json.loads((tmp_path / dataset.INFO_FILE).read_text())
    assert written == {"layout": dataset.LAYOUT, "format": "rrhf", "records": 5, "queries": 5, "responses": 12,
                       "pairs": 9, "prompts_truncated": 0, "responses_truncated": 0, "responses_unended": 0,
                       "responses_sft": 0, "queries_sft": 0, "tokens_unpacked": 80, "tokens_packed": 50}
    for stranger in ({**written, "layout": dataset.LAYOUT + 1}, {**written, "pairs": "9"}, written | {"records": None},
                     {k: v for k, v in written.items() if k != "tokens_packed"}, [written]):
        (tmp_path / dataset.INFO_FILE).write_text(json.dumps(stranger))
        assert dataset.PreparedInfo.read(tmp_path) is None, stranger
    info.write(tmp_path)
    assert dataset.complete(tmp_path) is None  # a good info without the data it counts: not complete
