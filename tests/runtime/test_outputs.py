"""Where a run may write: never over an input, a device or a folder; through a symlink; with the umask's mode;
a full disk named; and what `rank` wrote about old scores dropped when responses or scores change."""

import errno
import os
import stat

import pytest

from tests.conftest import read_jsonl

SCORED = [{"id": "a", "prompt": "p", "responses": [{"text": "x", "score": 1.0}, {"text": "y", "score": 0.0},
                                                    {"text": "z", "score": 0.5}]}]  # fmt: skip


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(write_jsonl, tmp_path, cli):
    src = write_jsonl("scored.jsonl", SCORED)
    before = src.read_text()
    for output in (src, tmp_path / "." / "scored.jsonl"):
        result = cli("rank", src, "-o", output)
        assert result.exit_code == 2
        assert result.stderr.strip() == f"rrhf: error: {output}: is also an input ({src}); write the output elsewhere"
    link = tmp_path / "link.jsonl"
    link.symlink_to(src)
    assert cli("rank", link, "-o", src).exit_code == 2  # the same file through a link
    assert src.read_text() == before


def test_a_symlinked_output_is_written_through_and_stays_a_link(write_jsonl, tmp_path, cli):
    target, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n")
    link.symlink_to(target)
    assert cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", link).exit_code == 0
    assert link.is_symlink() and read_jsonl(target)[0]["id"] == "a"


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_a_device_output_is_refused_before_any_work(kind, write_jsonl, tmp_path, cli):
    output = tmp_path / "out"
    output.mkdir() if kind == "folder" else os.mkfifo(output)
    result = cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", output)
    assert result.exit_code == 2
    what = "is a folder; name a file" if kind == "folder" else "is not a regular file (a device, pipe or socket)"
    assert result.stderr.strip().startswith(f"rrhf: error: {output}: {what}")
    assert stat.S_ISDIR(output.stat().st_mode) if kind == "folder" else stat.S_ISFIFO(output.stat().st_mode)


def test_artifacts_get_the_umask_mode(write_jsonl, tmp_path, cli):
    old = os.umask(0o022)
    try:
        out = tmp_path / "ranked.jsonl"
        assert cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", out).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert stat.S_IMODE(out.with_name("ranked.jsonl.meta.json").stat().st_mode) == 0o644


def test_a_full_disk_is_one_line_naming_the_file(write_jsonl, tmp_path, cli, monkeypatch):
    out = tmp_path / "ranked.jsonl"
    out.write_text("kept\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"rrhf: error: {out}: No space left on device"
    assert out.read_text() == "kept\n" and not list(tmp_path.glob(".ranked.jsonl.*"))


def test_rescoring_or_merging_a_ranked_file_drops_its_stale_pairs(write_jsonl, tmp_path, cli):
    ranked, rescored, merged = tmp_path / "ranked.jsonl", tmp_path / "rescored.jsonl", tmp_path / "merged.jsonl"
    assert cli("rank", write_jsonl("scored.jsonl", SCORED), "-o", ranked, "--normalize", "zscore").exit_code == 0
    row = read_jsonl(ranked)[0]
    assert row["pairs"] and all("raw_score" in r for r in row["responses"])
    rewards = tmp_path / "rewards.py"
    rewards.write_text("def length(prompt, response):\n    return float(len(response))\n")
    assert cli("score", ranked, "-o", rescored, "--scorer", "python", "--fn", f"{rewards}:length").exit_code == 0
    row = read_jsonl(rescored)[0]
    assert "pairs" not in row and not any("raw_score" in r for r in row["responses"])
    other = write_jsonl("other.jsonl", [{"id": "a", "prompt": "p", "responses": [{"text": "w", "score": 2.0}]}])
    assert cli("merge", ranked, other, "-o", merged).exit_code == 0
    assert "pairs" not in read_jsonl(merged)[0]


def test_an_output_name_too_long_for_what_the_run_writes_beside_it_is_refused_before_any_work(write_jsonl, tmp_path,
                                                                                              cli):
    src = write_jsonl("scored.jsonl", SCORED)
    output = tmp_path / ("r" * 236 + ".jsonl")  # 242 bytes fit; the temp name of its failure list (269) does not
    result = cli("rank", src, "-o", output)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and line.endswith("269 bytes where the file system allows 255; choose a shorter name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.jsonl"]


def test_an_output_folder_that_cannot_be_created_is_refused_before_any_work(write_jsonl, tmp_path, cli):
    src = write_jsonl("scored.jsonl", SCORED)
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("rank", src, "-o", blocker / "sub" / "ranked.jsonl")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"rrhf: error: {blocker / 'sub' / 'ranked.jsonl'}: {blocker} is not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any folder")
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(write_jsonl, tmp_path, cli):
    src = write_jsonl("scored.jsonl", SCORED)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        result = cli("rank", src, "-o", locked / "ranked.jsonl")
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2 and f"the folder {locked} cannot be written" in result.stderr


def test_a_file_size_limit_names_the_file_it_stopped(write_jsonl, tmp_path):
    """`ulimit -f`: the system's "File too large" names no file; the journal it stopped is named."""
    import subprocess
    import sys
    from pathlib import Path

    rows = [{"id": str(i), "prompt": "p", "responses": [{"text": "x" * 40}, {"text": "y"}]} for i in range(300)]
    src = write_jsonl("samples.jsonl", rows)
    rewards = Path(__file__).resolve().parents[2] / "examples" / "rewards.py"
    out = tmp_path / "scored.jsonl"
    command = [sys.executable, "-m", "rrhf_cli", "score", str(src), "-o", str(out), "--scorer", "python",
               "--fn", f"{rewards}:concise", "--batch-size", "64"]
    limited = ["bash", "-c", 'ulimit -f 4 && exec "$@"', "bash", *command]  # 4 KiB
    result = subprocess.run(limited, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"rrhf: error: {out}.partial: File too large"
