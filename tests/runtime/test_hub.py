"""A hub name that can load from nowhere is refused at once, in one line: offline, or with a hub that is silent."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stages.contract.errors import UsageError
from stages.runtime.hub import answers, cache_only

REPO = Path(__file__).resolve().parents[2]


def test_answers_tells_a_listening_port_from_a_closed_one():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert answers("127.0.0.1", port, seconds=2)
    assert not answers("127.0.0.1", port, seconds=2)  # closed now: refused


def test_a_local_folder_never_asks_the_hub(tmp_path):
    assert cache_only(str(tmp_path), env={"HF_HUB_OFFLINE": "1"}) is False


def test_a_name_nowhere_is_refused_naming_why(tmp_path):
    with pytest.raises(UsageError, match="HF_HUB_OFFLINE is set"):
        cache_only("nobody/no-such-model", env={"HF_HUB_OFFLINE": "1"})
    with pytest.raises(UsageError, match=r"the hub \(127\.0\.0\.1:9\) did not answer within 3 s"):
        cache_only("nobody/no-such-model", env={"HF_ENDPOINT": "http://127.0.0.1:9"})


@pytest.mark.parametrize("setting", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_sampling_from_a_hub_name_that_cannot_load_fails_fast_in_one_line(tmp_path, setting):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "a"}\n')
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HOME": str(tmp_path / "hf"), **setting}
    command = [sys.executable, "-m", "rrhf_cli", "sample", str(prompts), "-o", str(tmp_path / "out.jsonl"),
               "--model", "nobody/no-such-model"]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rrhf: error: --model nobody/no-such-model: no such folder")
    assert took < 40, f"{took:.0f} s: the hub's retries take about a minute"  # what it costs is importing torch
