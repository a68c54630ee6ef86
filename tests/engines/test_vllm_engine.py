"""Engine lifecycle: `close()` shuts an engine down unless the caller opened `reusing_engines()`, which keeps one
engine for the next start with the same model and settings. The bookkeeping is rrhf's own, so it is checked here
with a recording `LLM` class; the real-vLLM tests (`make test-vllm`) run the same code on real engines."""

from types import SimpleNamespace

import pytest

from stages.engines import vllm_engine
from stages.engines.vllm_engine import reusing_engines, start_llm


class _Recorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []

    def module(self) -> SimpleNamespace:
        recorder = self

        class LLM:
            def __init__(self, model: str, **engine: object) -> None:
                recorder.started.append(model)
                core = SimpleNamespace(shutdown=lambda: recorder.stopped.append(model))
                self.llm_engine = SimpleNamespace(engine_core=core)

        return SimpleNamespace(LLM=LLM, exceptions=SimpleNamespace())


@pytest.fixture(autouse=True)
def _outside_the_sessions_block():
    # The test session runs inside a reuse block (tests/conftest.py); these tests start from none.
    depth, vllm_engine._reuse["depth"] = vllm_engine._reuse["depth"], 0
    yield
    vllm_engine._reuse["depth"] = depth


def test_close_shuts_the_engine_down_outside_a_reuse_block():
    recorder = _Recorder()
    engine = start_llm(recorder.module(), "a", seed=0)
    engine.close()
    start_llm(recorder.module(), "a", seed=0).close()
    assert recorder.started == ["a", "a"] and recorder.stopped == ["a", "a"]
    assert engine.llm is None and engine not in vllm_engine._live


def test_a_reuse_block_keeps_one_engine_for_the_same_settings_and_shuts_it_at_the_end():
    recorder = _Recorder()
    vllm = recorder.module()
    with reusing_engines():
        with reusing_engines():  # nested: the inner end keeps what the outer block may still reuse
            first = start_llm(vllm, "a", seed=0)
            first.close()
        assert recorder.stopped == []
        assert start_llm(vllm, "a", seed=0) is first  # same model and settings: no second start
        first.close()
        other = start_llm(vllm, "a", seed=1)  # other settings: the kept engine goes first
        assert recorder.started == ["a", "a"] and recorder.stopped == ["a"]
        other.close()
    assert recorder.stopped == ["a", "a"] and not vllm_engine._kept
