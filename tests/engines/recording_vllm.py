"""A `vllm` module stand-in that records what rrhf asks of it: where the bookkeeping around an engine is rrhf's own
(its start and shutdown, the environment it starts in, refusals), it is checked without starting real vLLM; the
real-vLLM tests (`make test-vllm`) run the same code on real engines."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

# The shape of vLLM's own default logging configuration (vllm.logger.DEFAULT_LOGGING_CONFIG).
LOGGING = {
    "formatters": {"vllm": {"format": "%(message)s", "log_level": "INFO"}},
    "handlers": {"vllm": {"class": "logging.StreamHandler", "formatter": "vllm", "level": "INFO",
                          "stream": "ext://sys.stdout"}},
    "loggers": {"vllm": {"handlers": ["vllm"], "level": "DEBUG", "propagate": False}},
    "version": 1,
}


class Recorder:
    """Makes `vllm` modules whose `LLM` records its starts (with the environment then), shutdowns and requests;
    a request whose input is in `refuse` is refused with a ValueError, as vLLM refuses a prompt too long."""

    def __init__(self, refuse: tuple[Any, ...] = (), fail_start: str | None = None) -> None:
        self.started: list[str] = []
        self.environments: list[dict[str, str]] = []
        self.stopped: list[str] = []
        self.calls: list[list[Any]] = []
        self.refuse = refuse
        self.fail_start = fail_start

    def module(self) -> SimpleNamespace:
        """A `vllm` module with this recorder's `LLM`."""
        recorder = self

        class LLM:
            def __init__(self, model: str, **engine: object) -> None:
                recorder.environments.append(dict(os.environ))
                if recorder.fail_start is not None:
                    raise ValueError(recorder.fail_start)
                recorder.started.append(model)
                core = SimpleNamespace(shutdown=lambda: recorder.stopped.append(model))
                self.llm_engine = SimpleNamespace(engine_core=core)

            def classify(self, prompts: list[Any], **options: object) -> list[Any]:
                recorder.calls.append(prompts)
                if any(p in recorder.refuse for p in prompts):
                    raise ValueError("This model's maximum context length is 8 tokens.\nMore detail")
                return [SimpleNamespace(error=None, outputs=SimpleNamespace(probs=[0.5])) for _ in prompts]

        return SimpleNamespace(LLM=LLM, logger=SimpleNamespace(DEFAULT_LOGGING_CONFIG=LOGGING))
