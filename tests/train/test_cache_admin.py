"""`rrhf cache ls` and `rrhf cache clean`: the prepared train data between runs."""

import json
import os
from pathlib import Path

import pytest

from stages.contract.errors import UsageError
from stages.train.cache_admin import Entry, parse_size, to_remove
from stages.train.dataset import PreparedInfo
from stages.train.tokenise import Counts

DAY = 86400.0
INFO = PreparedInfo("rrhf", 4, Counts(queries=4))


def _entry(key: str, size: int, days_ago: float, complete: bool = True) -> Entry:
    return Entry(Path(key), size, 100 * DAY - days_ago * DAY, INFO if complete else None)


def test_what_a_clean_removes():
    new, mid, old = _entry("new", 30, 0.5), _entry("mid", 30, 5), _entry("old", 30, 40)
    torn = _entry("torn", 1, 0.1, complete=False)
    found = [torn, new, mid, old]
    now = 100 * DAY
    assert [e.key for e in to_remove(found, now, older_than_days=30)] == ["torn", "old"]
    # Least recently used first until the rest fits: new (30) + mid (30) = 60 > 50, so mid and old go.
    assert [e.key for e in to_remove(found, now, max_bytes=50)] == ["torn", "mid", "old"]
    assert [e.key for e in to_remove(found, now, max_bytes=60)] == ["torn", "old"]
    assert len(to_remove(found, now, everything=True)) == 4
    with pytest.raises(UsageError, match="say what to remove"):
        to_remove(found, now)


@pytest.mark.parametrize("text", ["big", "-1G", "G"])
def test_a_size_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_ls_and_clean_on_prepared_data(tiny_models, tmp_path, cli, write_jsonl, monkeypatch):
    monkeypatch.setenv("RRHF_CACHE", str(tmp_path / "cache"))
    responses = [{"text": t, "score": float(j)} for j, t in enumerate(["a", "bb"])]
    for name, n in (("one.jsonl", 2), ("two.jsonl", 3)):
        scored = write_jsonl(name, [{"id": f"q{i}", "prompt": f"p{i}", "responses": responses} for i in range(n)])
        trained = cli("train", str(scored), "-o", str(tmp_path / f"out-{n}"), "--model", str(tiny_models.policy),
                      "--max-steps", "1")
        assert trained.exit_code == 0, trained.stderr
    folders = sorted((tmp_path / "cache" / "train-data").iterdir())
    month_ago = os.stat(folders[0]).st_mtime - 31 * DAY
    os.utime(folders[0], (month_ago, month_ago))

    listed = cli("cache", "ls", "--json")
    rows = json.loads(listed.stdout)
    assert sorted((r["records"], r["complete"]) for r in rows) == [(2, True), (3, True)]
    assert rows[-1]["key"] == folders[0].name and rows[-1]["last_used"].endswith("days ago")

    dry = cli("cache", "clean", "--older-than", "30", "--dry-run")
    assert dry.exit_code == 0 and f"would remove {folders[0]}" in dry.stderr and folders[0].exists()
    cleaned = cli("cache", "clean", "--older-than", "30")
    assert cleaned.exit_code == 0 and not folders[0].exists() and folders[1].exists()
    refused = cli("cache", "clean", "--max-size", "lots")
    assert refused.exit_code == 2 and "'lots' is not a size" in refused.stderr
    assert cli("cache", "clean", "--all").exit_code == 0 and not folders[1].exists()
