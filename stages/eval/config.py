"""Settings of `rrhf eval`: how to sample from the models and how to score what they write.

The settings are passed on to the sample and score stages; both of their configs are built while this one
is validated, so every mistake is reported before any model loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from stages.engines.settings import VllmSettings
from stages.runtime.config import borrowed, flag_name
from stages.sample.config import SampleConfig
from stages.score.config import RmFormat, ScoreConfig

# This command's flag for each setting of the stages whose name differs here.
_SAMPLE_NAMES = {"backend": "sample_backend"}
_SCORE_NAMES = {"backend": "scorer", "model": "scorer_model"}


class EvalConfig(VllmSettings):
    """Settings of `rrhf eval`; the vLLM settings apply where `--sample-backend vllm` samples."""

    model: str = Field(description="The model to evaluate: a from_pretrained folder or hub name.")
    baseline: str | None = Field(None, description="A model to compare with (win rate); e.g. the one before training.")
    k: int = borrowed(SampleConfig, "k", default=1, description="Responses per prompt and model.")
    sample_backend: Literal["hf", "vllm"] = borrowed(
        SampleConfig, "backend", description="How to sample from the models.", json_schema_extra=None
    )
    temperature: float = borrowed(SampleConfig, "temperature")
    top_p: float = borrowed(SampleConfig, "top_p")
    max_new_tokens: int = borrowed(SampleConfig, "max_new_tokens", default=128)
    seed: int = borrowed(SampleConfig, "seed", description="Seed of the sampling; both models draw with the same one.")
    batch_size: int = Field(16, ge=1, description="Prompts per sampling batch; records per scoring batch.")
    scorer: str = borrowed(ScoreConfig, "backend")
    scorer_model: str | None = borrowed(ScoreConfig, "model", description="The scorer's model (reward model, judge, "
                                        "logprob policy).")
    fn: str | None = borrowed(ScoreConfig, "fn")
    rm_format: RmFormat = borrowed(ScoreConfig, "rm_format")
    judge_mode: Literal["pointwise", "listwise"] = borrowed(ScoreConfig, "judge_mode")
    judge_template: Path | None = borrowed(ScoreConfig, "judge_template")
    base_url: str | None = borrowed(ScoreConfig, "base_url")
    api_key_env: str = borrowed(ScoreConfig, "api_key_env")
    max_length: int = borrowed(ScoreConfig, "max_length", description="Longest scored sequence and perplexity window.")

    @model_validator(mode="after")
    def _stages_accept(self) -> EvalConfig:
        problems = []
        for build, names in ((lambda: self.sample_config(self.model, "model"), _SAMPLE_NAMES),
                             (self.score_config, _SCORE_NAMES)):
            try:
                build()
            except ValidationError as err:
                problems += [_in_our_terms(error, names) for error in err.errors()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def sample_config(self, model: str, label: str) -> SampleConfig:
        """The sample stage's settings for one of the models; its responses get `label` as their source."""
        return SampleConfig(
            model=model, k=self.k, backend=self.sample_backend, temperature=self.temperature, top_p=self.top_p,
            max_new_tokens=self.max_new_tokens, seed=self.seed, batch_size=self.batch_size, source=label,
            **{name: getattr(self, name) for name in VllmSettings.model_fields},
        )

    def score_config(self) -> ScoreConfig:
        """The score stage's settings."""
        return ScoreConfig(
            backend=self.scorer, model=self.scorer_model, fn=self.fn, rm_format=self.rm_format,
            judge_mode=self.judge_mode, judge_template=self.judge_template, base_url=self.base_url,
            api_key_env=self.api_key_env, batch_size=self.batch_size, max_length=self.max_length,
        )


def _in_our_terms(error: Any, names: dict[str, str]) -> str:
    # A stage's message names the stage's flags; say them as this command spells them.
    def ours(match: re.Match[str]) -> str:
        name = match.group(1).replace("-", "_")
        return flag_name(names.get(name, name))

    message = re.sub(r"--([a-z][a-z0-9-]*)", ours, error["msg"].removeprefix("Value error, "))
    if error["loc"]:
        field = str(error["loc"][0])
        return f"{flag_name(names.get(field, field))}: {message[:1].lower() + message[1:]}"
    return message
