"""The data-parallel finish: rank 0 streams every rank's share into input order, reading the files where it sees
them and receiving them in chunks where it does not (RRHF_SHARED_FS=0, as on nodes with local disks)."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stages.runtime.shares import in_input_order

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from stages.runtime.launch import Group, current_launch
    from stages.runtime.shares import collect_shares, share_path

    out = Path(sys.argv[1])
    launch = current_launch()
    group = Group(launch)
    own = share_path(out, launch.tag)
    # Rank r holds every second record from r: shares of a round-robin split, each in input order.
    rows = [{"id": f"r{i}", "text": "x" * (i * 7)} for i in range(launch.rank, 25, 2)]
    own.write_text("".join(json.dumps(row) + "\\n" for row in rows))
    shares = collect_shares(group, out, own, chunk_bytes=int(sys.argv[2]))
    if shares is not None:
        Path(sys.argv[3]).write_text(json.dumps([str(p) for p in shares]))
    group.barrier()
    group.dist.destroy_process_group()
    """
)


@pytest.mark.parametrize("shared", ["1", "0"])
def test_rank_zero_gets_every_share_with_or_without_a_shared_filesystem(shared, tmp_path):
    script = tmp_path / "collect.py"
    script.write_text(SCRIPT)
    out, listing = tmp_path / "out.jsonl", tmp_path / "shares.json"
    env = {**os.environ, "RRHF_SHARED_FS": shared, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run = subprocess.run([*launcher, str(script), str(out), "50", str(listing)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    shares = [Path(p) for p in json.loads(listing.read_text())]
    received = shares[1].name.endswith(".received")
    assert received == (shared == "0")  # chunked only where rank 0 is told it cannot see the file
    own = tmp_path / "out.jsonl.rank1-of-2.share"
    assert shares[1].read_bytes() == own.read_bytes()  # 50-byte chunks rebuild the file exactly
    ids = [f"r{i}" for i in range(25)]
    merged = [json.loads(line)["id"] for line in in_input_order(shares, ids)]
    assert merged == ids


def test_shares_merge_in_input_order_when_records_are_missing(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text('{"id": "c"}\n{"id": "a"}\n')
    second.write_text('{"id": "d"}\n{"id": "b"}\n')
    # A failed record leaves a gap; the shares follow the input's order, not their own.
    assert [json.loads(x)["id"] for x in in_input_order([first, second], ["d", "c", "b", "e", "a"])] == [
        "d", "c", "b", "a"]


def test_a_rerun_under_another_number_of_processes_says_so_and_clears_the_old_journals(tmp_path):
    from tests.conftest import read_jsonl, rrhf_process

    rows = [{"id": str(i), "prompt": f"p{i}", "responses": [{"text": "x" * i}]} for i in range(8)]
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(json.dumps(row) + "\n" for row in rows))
    rewards = tmp_path / "rewards.py"
    rewards.write_text(textwrap.dedent("""
        import os
        def length(prompt, response):
            if os.environ.get("FAIL") and prompt == "p3":
                raise ValueError("p3 fails this time")
            return float(len(response))
    """))
    out = tmp_path / "scored.jsonl"
    args = ("score", src, "-o", out, "--scorer", "python", "--fn", f"{rewards}:length", "--batch-size", "1")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = rrhf_process(*args, nproc=2, env={**env, "FAIL": "1"})
    assert first.returncode == 1, first.stderr[-3000:]
    left = sorted(p.name for p in tmp_path.glob("scored.jsonl.rank*"))
    assert "scored.jsonl.rank0-of-2.partial" in left and "scored.jsonl.rank1-of-2.partial" in left
    again = rrhf_process(*args, env=env)
    assert again.returncode == 0, again.stderr
    said = [line for line in again.stderr.splitlines() if "cannot continue" in line]
    assert len(said) == 1 and re.search(r"an unfinished run under 2 process\(es\) left [1-7] finished record", said[0])
    assert not list(tmp_path.glob("scored.jsonl.rank*"))
    assert [r["responses"][0]["score"] for r in read_jsonl(out)] == [float(i) for i in range(8)]


def test_old_journals_of_a_run_still_going_are_left_to_it(tmp_path):
    from stages.contract.errors import UsageError
    from stages.runtime.outputs import lock_output, unlock_output
    from stages.runtime.shares import drop_other_world_sizes

    out = tmp_path / "o.jsonl"
    journal = tmp_path / "o.jsonl.rank1-of-2.partial"
    journal.write_text('{"rrhf_journal": 1, "fingerprint": "f"}\n')
    lock_output(tmp_path / "o.jsonl.rank1-of-2")  # that rank is still running
    try:
        with pytest.raises(UsageError, match=r"another rrhf run under 2 process\(es\) \(process \d+\) is writing it"):
            drop_other_world_sizes(out, 1)
        assert journal.exists()
    finally:
        unlock_output(tmp_path / "o.jsonl.rank1-of-2")
    assert "under 2 process(es) left 0 finished record(s)" in drop_other_world_sizes(out, 1)
    assert not journal.exists()
