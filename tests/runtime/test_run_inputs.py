"""A stage run's inputs are what its passes read: the meta and the journal's fingerprint name those bytes, and a
run that needs an input's ids has them from its summary when it starts."""

import hashlib

import pytest
from pydantic import BaseModel

from stages.contract.errors import BadInput, RunInterrupted, UsageError
from stages.contract.inputs import InputFile
from stages.contract.meta import read_meta
from stages.runtime.journal import partial_path
from stages.runtime.launch import Launch
from stages.runtime.runs import BatchResult, StageRun


class _Settings(BaseModel):
    k: int = 1


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "prompt": f"p{i}"} for i in range(n)]


def test_a_streamed_pass_is_named_in_the_meta_by_the_bytes_it_read(tmp_path, write_jsonl):
    src = write_jsonl("in.jsonl", _rows(3))
    rows = InputFile(src).read()
    out = tmp_path / "out.jsonl"
    StageRun("demo", _Settings(), out, [rows]).finish(record for _, record in rows)
    meta = read_meta(out)
    assert meta is not None and meta.counts == {"records": 3}
    (named,) = meta.inputs
    assert (named.path, named.format, named.records) == (str(src), "trl-prompt", 3)
    assert named.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()


def test_a_journal_is_kept_for_the_content_scanned_and_refused_for_another(tmp_path, write_jsonl):
    src = write_jsonl("in.jsonl", _rows(4))
    out = tmp_path / "out.jsonl"
    first = StageRun("demo", _Settings(), out, [InputFile(src).scan()])

    def half(batch, ids):  # journals the first batch, then stops the run as a kill would
        if batch[0].id != "r0":
            raise KeyboardInterrupt
        return BatchResult(finished=batch)

    with pytest.raises(RunInterrupted, match="run the same command again"):
        first.batches(InputFile(src).records(), 2, half)
    assert partial_path(out).exists()
    write_jsonl("in.jsonl", _rows(5))  # other content: another run's journal
    other = StageRun("demo", _Settings(), out, [InputFile(src).scan()])
    with pytest.raises(UsageError, match="input changed"):
        other.done()


def test_a_data_parallel_run_without_its_inputs_ids_is_refused_before_any_work(tmp_path, write_jsonl):
    src = write_jsonl("in.jsonl", _rows(2))
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match="read whole, with its ids"):
        StageRun("demo", _Settings(), out, [InputFile(src).read()], launch=Launch(rank=0, world_size=2))
    with pytest.raises(ValueError, match="read whole, with its ids"):
        StageRun("demo", _Settings(), out, [_unkept(src)], launch=Launch(rank=0, world_size=2))
    assert not out.exists() and not partial_path(out).exists()


def _unkept(src):
    rows = InputFile(src).read()  # a whole pass that kept no ids
    for _ in rows:
        pass
    return rows.summary


def test_a_pass_told_an_earlier_hash_refuses_other_bytes_in_a_run(tmp_path, write_jsonl):
    src = write_jsonl("in.jsonl", _rows(3))
    scanned = InputFile(src).scan()
    write_jsonl("in.jsonl", _rows(2))
    rows = InputFile(src).read(sha256=scanned.sha256)
    run = StageRun("demo", _Settings(), tmp_path / "out.jsonl", [scanned])
    with pytest.raises(BadInput, match=f"^{src}: changed while it was read"):
        run.finish(record for _, record in rows)
    assert not (tmp_path / "out.jsonl").exists()
