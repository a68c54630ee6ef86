"""A pass over an input describes the bytes it read: its summary's hash is that of the file's bytes, and a file
changed during the pass, or between two passes of one run, is refused in one line naming it."""

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.contract.errors import BadInput
from stages.contract.formats import InputOptions
from stages.contract.inputs import InputFile, InputSummary, load_records

ROWS = [{"id": f"r{i}", "prompt": f"prompt number {i}"} for i in range(6)]
CHANGED = r"changed while it was read"


def _written(path: Path, rows: list[dict]) -> Path:
    """`rows` in the format the suffix names, dated an hour back, as an input written before the run is."""
    if path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".csv":
        path.write_text("id,prompt\n" + "".join(f"{r['id']},{r['prompt']}\n" for r in rows))
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    an_hour_ago = path.stat().st_mtime - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_a_whole_pass_sums_up_the_bytes_it_read(tmp_path, suffix):
    path = _written(tmp_path / f"in{suffix}", ROWS)
    rows = InputFile(path).read(keep_ids=True)
    assert not rows.ended
    taken = list(rows)
    assert [r.id for _, r in taken] == [r["id"] for r in ROWS]
    summary = rows.summary
    assert summary == InputSummary(str(path), "trl-prompt", 6, _sha256(path), {})
    assert list(summary.ids or []) == [r["id"] for r in ROWS]
    # Equal whether or not the ids were kept: they describe the same pass.
    assert InputFile(path).scan() == load_records(path).summary


def test_the_format_is_known_from_the_first_row_and_the_summary_only_at_the_end(tmp_path):
    path = _written(tmp_path / "in.jsonl", ROWS)
    rows = InputFile(path).read()
    iterator = iter(rows)
    assert rows.format is None
    next(iterator)
    assert rows.format == "trl-prompt"
    with pytest.raises(RuntimeError, match="has not ended"):
        rows.summary  # noqa: B018
    for _ in iterator:
        pass
    assert rows.summary.count == 6


def test_a_limited_pass_still_names_the_whole_file(tmp_path):
    path = _written(tmp_path / "in.jsonl", ROWS)
    rows = InputFile(path, InputOptions(limit=2)).read()
    assert len(list(rows)) == 2
    assert rows.summary.count == 2 and rows.summary.sha256 == _sha256(path)
    assert rows.summary.options == {"limit": 2}


def test_a_file_rewritten_between_two_passes_is_refused_naming_it(tmp_path):
    path = _written(tmp_path / "in.jsonl", ROWS)
    first = InputFile(path).scan()
    assert len(list(InputFile(path).read(sha256=first.sha256))) == 6  # the same bytes: read again
    _written(path, ROWS[:3] + [{"id": "new", "prompt": "another"}] + ROWS[4:])
    with pytest.raises(BadInput, match=CHANGED) as refused:
        for _ in InputFile(path).read(sha256=first.sha256):
            pass
    assert str(refused.value).startswith(f"{path}: ") and "\n" not in str(refused.value)


def _rewritten(path: Path) -> None:
    # The same size, other bytes, in place: only the time (and the content) tells.
    data = path.read_bytes()
    path.write_bytes(data.replace(b"prompt number", b"PROMPT NUMBER"))
    assert path.stat().st_size == len(data)


def _truncated(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _appended(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b'{"id": "late", "prompt": "appended"}\n' if path.suffix == ".jsonl" else b"late,appended\n")


def _replaced(path: Path) -> None:
    other = path.with_name("other" + path.suffix)
    _written(other, ROWS[:2])
    os.replace(other, path)


# Appending to a .json or .parquet file leaves no readable file of its format: truncation stands for it there.
CHANGES = [(suffix, change) for suffix in (".jsonl", ".json", ".csv", ".parquet")
           for change in (_rewritten, _truncated, _appended, _replaced)
           if change is not _appended or suffix in (".jsonl", ".csv")]


@pytest.mark.parametrize(("suffix", "change"), CHANGES)
def test_a_file_changed_during_a_pass_is_refused_naming_it(tmp_path, suffix, change):
    path = _written(tmp_path / f"in{suffix}", ROWS)
    rows = InputFile(path).read()
    with pytest.raises(BadInput, match=CHANGED) as refused:
        for number, _ in enumerate(rows):
            if number == 1:
                change(path)
    assert refused.value.where == str(path)
    assert not rows.ended


def test_a_duplicate_is_still_named_by_the_second_pass_that_finds_it(tmp_path):
    # That pass is told the first one's hash, so a file changed in between is refused, never passed as clean.
    path = _written(tmp_path / "in.jsonl", ROWS + [ROWS[0]])
    with pytest.raises(BadInput, match=r"in.jsonl:7: duplicate id 'r0' \(first at .*in.jsonl:1\)"):
        load_records(path)


def test_an_hf_dataset_is_hashed_by_its_prepared_files_and_reads_as_before(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    summary = InputFile(f"hf:{folder}:train").scan()
    assert summary.sha256 is not None and (summary.count, summary.format) == (6, "trl-prompt")
