"""Killing a real vLLM engine in the middle of a run: the test side of `Engine.run`'s death handling."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def engine_core_pids(parent: int) -> list[int]:
    """The vLLM engine-core processes (`VLLM::EngineCore`) started by process `parent`."""
    return child_pids(parent, b"EngineCore")


def child_pids(parent: int, marker: bytes = b"") -> list[int]:
    """The processes whose parent is `parent` and whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), -1)
        if ppid == parent and marker in cmdline:
            found.append(int(entry.name))
    return found


def ignores_sigint(pid: int) -> bool:
    """Whether process `pid` runs with SIGINT ignored (its SigIgn mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(mask >> (signal.SIGINT - 1) & 1)


def kill_engine_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 240,
                     parent: int | None = None) -> None:
    """Wait until `ready()` (e.g. two batches journaled), then SIGKILL the engine core started by `parent` (by
    default `proc` itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            pids = engine_core_pids(proc.pid if parent is None else parent)
            assert pids, "no engine-core process found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)
    raise AssertionError(f"the run ended or timed out before it was ready to be killed (exit {proc.poll()})")


def kill_mid_run_then_rerun(args: list, out: Path, after: int) -> int:
    """Start `rrhf ARGS` writing `out`, SIGKILL its engine core once `after` records are journaled, check that the
    run ends as promised (exit 1, one `rrhf: error: vLLM's engine stopped: ...` line, no traceback, no output,
    the journal kept), then run the same command again to the end; returns the records journaled at the stop."""
    from tests.conftest import rrhf_process

    journal = out.with_name(out.name + ".partial")
    proc = rrhf_process(*args, background=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_engine_when(proc, lambda: journaled(journal) >= after)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr and not out.exists()
    last = [line for line in stderr.splitlines() if line.startswith("rrhf:")][-1]
    assert last.startswith("rrhf: error: vLLM's engine stopped: its process EngineCore was killed (SIGKILL); "), last
    assert last.endswith(f"kept in {journal}: run the same command again to continue"), last
    kept = journaled(journal)
    rerun = rrhf_process(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return kept


def journaled(path: Path) -> int:
    """Records in a journal (its lines but the header), 0 before it exists."""
    return max(0, len(path.read_bytes().splitlines()) - 1) if path.exists() else 0


def ended_within(proc: subprocess.Popen, stop: Callable[[], None], seconds: float = 30) -> str:
    """Run `stop()` (wait for the moment, then signal `proc` or its engine) and wait for `proc` to end; returns
    its stderr, having checked it ended within `seconds` of the stop. Whatever fails, nothing of it is left
    running (its session is killed)."""
    try:
        stop()
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=seconds + 30)
        assert time.monotonic() - stopped < seconds
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return stderr
