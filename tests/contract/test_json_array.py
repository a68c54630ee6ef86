"""A .json input's array is read an item at a time: the items and their errors as reading it whole gives them, for
items cut anywhere by the window, and memory that does not grow with the file."""

import json
import tracemalloc

import pytest

from stages.contract import json_array
from stages.contract.errors import BadInput
from stages.contract.readers import iter_rows

ITEMS = [{"id": "a", "prompt": "x" * 30, "n": 12345678901234567890123}, {"id": "b", "prompt": "é [\"]}", "f": 1.5},
         {"id": "c", "prompt": "z", "t": True, "l": [None, {"k": -7}]}]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_items_cut_anywhere_by_the_window_come_out_whole(tmp_path, monkeypatch, block):
    monkeypatch.setattr(json_array, "_BLOCK_CHARS", block)
    path = tmp_path / "in.json"
    path.write_text("\ufeff[\n  " + ",\n  ".join(json.dumps(item, ensure_ascii=False) for item in ITEMS) + "\n]\n",
                    encoding="utf-8")
    rows = list(iter_rows(path))
    assert [value for _, value in rows] == ITEMS  # the 23-digit integer exact, as json.loads keeps it
    assert [str(where) for where, _ in rows] == [f"{path}: item {i}" for i in (1, 2, 3)]


@pytest.mark.parametrize(("text", "where", "problem"), [
    ('[{"a": 1},\n{"b": }]', ":2:", "invalid JSON (Expecting value at column 7)"),
    ('[{"a": 1}\n{"b": 2}]', ":2:", "Expecting ',' delimiter"),
    ('[{"a": 1},\n{"b": 2}', ":2:", "the array is not closed"),
    ('[{"a": 1}]\n[]', ":2:", "extra data after the array"),
    ('\n\n{"a": 1}', ":", "must hold an array of records"),
    ('[\n\n' + "[" * 200 + "]" * 200 + "]", ": item 1:", "nested too deeply"),
])
def test_bad_json_is_named_at_its_line(tmp_path, monkeypatch, text, where, problem):
    monkeypatch.setattr(json_array, "_BLOCK_CHARS", 4)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(BadInput) as refused:
        list(iter_rows(path))
    assert problem in str(refused.value)
    assert str(refused.value).startswith(f"{path}{where} ")


def test_memory_holds_an_item_and_a_block_not_the_file(tmp_path):
    path = tmp_path / "big.json"
    with path.open("w") as handle:
        handle.write("[" + ",".join(json.dumps({"id": str(i), "prompt": "p" * 1000}) for i in range(20_000)) + "]")
    assert path.stat().st_size > 20_000_000
    tracemalloc.start()
    count = sum(1 for _ in iter_rows(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 20_000 and peak < 8 * 2**20  # a 20 MB file read in under 8 MiB
