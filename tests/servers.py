"""A real OpenAI-compatible server for tests: `transformers serve` on 127.0.0.1 with a local model folder."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def transformers_serve(model_dir: Path, log_path: Path, startup_s: float = 120) -> Iterator[str]:
    """Run `transformers serve MODEL_DIR` on loopback; yields its base URL (no /v1), stops it afterwards."""
    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        raise RuntimeError("transformers[serving] is a dev dependency: `transformers` is not installed")
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False
