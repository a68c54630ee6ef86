"""The life of a `VllmEngine`: started on entering its block and shut down on leaving it, its logging settings
set for the start only, its error log removed after it; a refused start is one line; a refused request fails
alone. Checked with a recording `vllm` module (tests/engines/recording_vllm.py)."""

import os
from pathlib import Path

import pytest

from stages.contract.errors import RrhfError
from stages.engines.vllm_engine import VllmEngine
from stages.runtime.runs import Failure
from tests.engines.recording_vllm import Recorder


@pytest.fixture(autouse=True)
def _names_are_labels(monkeypatch):
    """The recorder's models are names, not folders or hub models: the hub check before a start is not theirs."""
    monkeypatch.setattr("stages.engines.vllm_engine.cache_only", lambda name: False)


def test_the_block_starts_the_engine_and_its_end_shuts_it_down_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "ERROR")  # the user's level is theirs, and kept
    before = dict(os.environ)
    recorder = Recorder()
    with VllmEngine(recorder.module(), "a", seed=0) as engine:
        assert recorder.started == ["a"] and recorder.stopped == []
        assert engine.alive and engine.key == ("a", ("seed", 0))
        started_in = recorder.environments[0]
        config = Path(started_in["VLLM_LOGGING_CONFIG_PATH"])
        assert config.exists() and started_in["VLLM_LOGGING_LEVEL"] == "ERROR"
        assert started_in["VLLM_CONFIGURE_LOGGING"] == "1"
        assert dict(os.environ) == before  # set for the start only
    assert recorder.stopped == ["a"] and not engine.alive
    assert not config.parent.exists()  # the error log goes with the engine
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        _ = engine.llm


def test_two_engines_one_after_the_other_each_start_and_stop():
    recorder = Recorder()
    vllm = recorder.module()
    for seed in (0, 1):
        with VllmEngine(vllm, "a", seed=seed):
            pass
    assert recorder.started == ["a", "a"] and recorder.stopped == ["a", "a"]


def test_a_refused_start_is_one_line_and_leaves_nothing_behind(monkeypatch):
    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    recorder = Recorder(fail_start="tensor_parallel_size 3 does not divide 2 heads\nat ...")
    with pytest.raises(RrhfError) as failed, VllmEngine(recorder.module(), "m", tensor_parallel_size=3):
        pass
    assert str(failed.value) == "vLLM could not start m: tensor_parallel_size 3 does not divide 2 heads"
    assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ
    assert not Path(recorder.environments[0]["VLLM_LOGGING_CONFIG_PATH"]).parent.exists()


def test_a_refused_batch_is_retried_item_by_item_and_only_the_refused_item_fails():
    recorder = Recorder(refuse=("b",))
    items = ["a", "b", "c"]
    with VllmEngine(recorder.module(), "m") as engine:
        outputs = engine.run_each(lambda chosen: engine.llm.classify([items[j] for j in chosen]), 3)
    assert recorder.calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert outputs[1] == Failure(error="vLLM refused the request: This model's maximum context length is 8 tokens.")
    assert [o.outputs.probs for o in (outputs[0], outputs[2])] == [[0.5], [0.5]]
    with VllmEngine(recorder.module(), "m") as engine:
        assert engine.run_each(lambda chosen: engine.llm.classify([items[j] for j in chosen]), 0) == []
