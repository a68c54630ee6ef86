"""Shared fixtures: tiny real models built offline, file writers and a CLI runner."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

# Nothing in the suite may reach a model or dataset hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# vLLM's CPU build reserves this many GiB of KV cache per engine (its default is far more than tiny models need).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def real_vllm(test: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a test that runs real vLLM (`make test-vllm` runs them); skipped where vLLM is not installed."""
    missing = importlib.util.find_spec("vllm") is None
    return pytest.mark.vllm(pytest.mark.skipif(missing, reason="needs vLLM: make install-vllm")(test))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory):
    """A tiny Llama policy and a one-label Llama reward model with a chat-templated BPE tokenizer."""
    from stages.lm.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session", autouse=True)
def _session_rrhf_cache(tmp_path_factory: pytest.TempPathFactory):
    """Train's prepared data goes to a cache of the session's (subprocesses inherit it), never the user's."""
    before = os.environ.get("RRHF_CACHE")
    os.environ["RRHF_CACHE"] = str(tmp_path_factory.mktemp("rrhf-cache"))
    yield
    if before is None:
        os.environ.pop("RRHF_CACHE", None)
    else:
        os.environ["RRHF_CACHE"] = before


class SharedEngine:
    """Hands the stages of a test session one running vLLM engine while they ask for the same model and settings;
    a stage asking for others gets a new engine, the old one shut down first (one engine's memory at a time), and
    so does one whose engine died or was left busy."""

    def __init__(self) -> None:
        self.engine: Any = None
        self._resources = contextlib.ExitStack()

    def open(self, vllm: Any, model: str, **settings: Any) -> contextlib.AbstractContextManager[Any]:
        """`stages.engines.vllm_engine.open_engine` for the session: the kept engine, left running after the block."""
        from stages.engines.vllm_engine import VllmEngine

        wanted = VllmEngine(vllm, model, **settings)
        if self.engine is not None and (self.engine.key != wanted.key or not self.engine.alive):
            self.close()
        if self.engine is None:
            self.engine = self._resources.enter_context(wanted)
        return contextlib.nullcontext(self.engine)

    def close(self) -> None:
        """Shut the kept engine down."""
        self.engine = None
        self._resources.close()


@pytest.fixture(scope="session", autouse=True)
def shared_vllm_engine():
    """Real-vLLM tests on the same model and settings share one engine (its start is most of a test's time); it
    is shut down before the session ends, while its logs still have a stream."""
    from stages.engines import vllm_engine

    shared = SharedEngine()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vllm_engine, "open_engine", shared.open)
        try:
            yield shared
        finally:
            shared.close()


@pytest.fixture(scope="session")
def vllm_models(tmp_path_factory: pytest.TempPathFactory):
    """The tiny models with attention heads 64 wide, the narrowest vLLM's CPU attention takes."""
    from stages.lm.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("vllm-models"), hidden_size=128, heads=2, kv_heads=2)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: the tiny model's matmuls gain nothing from threads, and on a busy
    machine an OpenMP barrier waiting for a descheduled thread costs milliseconds per op."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[str, list[Any]], Path]:
    """Write rows (objects or raw strings) as one line each and return the path."""

    def write(name: str, rows: list[Any]) -> Path:
        path = tmp_path / name
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Run `rrhf ARGS...` in-process; stdout and stderr are kept apart."""
    from rrhf_cli.app import app

    runner = CliRunner()

    def run(*args: str | Path) -> Any:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


def rrhf_process(*args: str | Path, nproc: int = 1, timeout: float = 300, **popen: Any) -> Any:
    """Run `rrhf ARGS...` as its own process (under torchrun with `nproc` > 1); returns the CompletedProcess,
    or with `background=True` the Popen."""
    import subprocess
    import sys

    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    command = [*(launcher if nproc > 1 else [sys.executable]), "-m", "rrhf_cli", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **popen.pop("env", {})}
    if popen.pop("background", False):
        return subprocess.Popen(command, env=env, start_new_session=True, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, **popen)


def sigint_default() -> None:
    """A child's preexec_fn: SIGINT back to its default. A shell or nohup starts a background job (and so this
    suite) with SIGINT ignored, which children inherit; a test that interrupts a child must undo that."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every object of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def chat_ids(tokenizer: Any, prompt: Any, response: str) -> list[int]:
    """The ids a chat-format reward model reads: the templated prompt, then the response's turn, each
    tokenised on its own as the score stage does."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    prefix = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
    return (tokenizer(prefix, add_special_tokens=False).input_ids
            + tokenizer(full[len(prefix):], add_special_tokens=False).input_ids)


def direct_logprobs(model: Any, prompt: list[int], answer: list[int]) -> Any:
    """Each answer token's log-prob after `prompt` by one plain forward over the full vocabulary: the reference the
    packed, lean and engine paths are held to."""
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + answer])).logits[0].float(), -1)
    n = len(prompt)
    return logp[n - 1 : n - 1 + len(answer)].gather(-1, torch.tensor(answer)[:, None])[:, 0]


def prompt_ids(tokenizer: Any, prompt: Any) -> list[int]:
    """A prompt's ids as the stages encode it: a conversation through the chat template, plain text as it is."""
    if isinstance(prompt, list):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False).input_ids
    return tokenizer(prompt).input_ids
