"""Settings of `rrhf eval`: a `sample` section (how to sample from the models) and a `score` section (how to
score what they write), the stages' own configs, beside eval's own settings.

The sections are validated as part of this config, with the stages' own checks, so every mistake is reported
before any model loads, each setting named by the flag eval gives it. A new score setting needs no edit here: it
becomes `--scorer-NAME` (or, in a config file, a key under `score:`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, model_validator

from stages.runtime.config import borrowed, section, setting
from stages.sample.config import SampleConfig
from stages.score.config import ScoreConfig


class EvalSampling(SampleConfig):
    """The sample stage's settings as eval uses them: eval names the model and the source, and the models run
    here (hf or vllm), since the reference perplexity needs their weights."""

    model: str = setting("", "The model sampled from; eval sets it to --model, then --baseline.", shown=False)
    engine: Literal["hf", "vllm"] = setting(  # type: ignore[assignment]
        "hf", "Where the models run: hf (transformers, in-process) or vllm (in-process)."
    )
    k: int = borrowed(SampleConfig, "k", default=1, description="Responses per prompt and model.")
    max_new_tokens: int = borrowed(SampleConfig, "max_new_tokens", default=128)
    seed: int = borrowed(SampleConfig, "seed", description="Seed of the sampling; both models draw with the same one.")


# The score section's settings are `--scorer-NAME` (`--scorer-model`, `--scorer-engine`: eval's --model and
# --engine are the sampled models'), except these, which users type often and which say `scorer` already or
# belong to one scorer only.
_SHORT_SCORE_FLAGS = ("scorer", "fn", "rm_format", "judge_mode", "judge_template", "base_url", "api_key_env",
                      "max_length")
_SET_BY_EVAL = ("batch_size",)


class EvalConfig(BaseModel):
    """Settings of `rrhf eval`."""

    model: str = setting(description="The model to evaluate: a from_pretrained folder or hub name.", path="local")
    baseline: str | None = setting(None, "A model to compare with (the reward over it paired over prompts, and the "
                                   "win rate): the one before training, or one trained another way.", path="local")
    batch_size: int = setting(16, "Prompts per sampling batch; records per scoring batch.", ge=1)
    sample: EvalSampling = section(
        "How to sample from the models: the sample stage's settings.",
        hidden=(*_SET_BY_EVAL, "source", "append", "include_field", "shard", "endpoint", "base_url", "api_key_env",
                "concurrency", "max_retries", "backoff", "timeout", "allow_failures"),
        deprecated=(("sample_backend", "engine"),),
    )
    score: ScoreConfig = section(
        "How to score the responses: the score stage's settings.",
        prefix="scorer-",
        keep=_SHORT_SCORE_FLAGS,
        hidden=(*_SET_BY_EVAL, "as_name", "primary", "keep_score"),
    )

    @model_validator(mode="before")
    @classmethod
    def _set_by_eval(cls, data: Any) -> Any:
        # The sections are the stages' configs; these settings of theirs are eval's, set here.
        if not isinstance(data, dict):
            return data
        batch = data.get("batch_size", cls.model_fields["batch_size"].default)
        batch_setting = {"batch_size": batch} if isinstance(batch, int) and batch >= 1 else {}
        sample, score = (_mapping(data.get(name, {})) for name in ("sample", "score"))
        filled = dict(data)
        if isinstance(sample, dict):
            filled["sample"] = {**sample, "model": data.get("model") or "", "source": "model", **batch_setting}
        if isinstance(score, dict):
            filled["score"] = {**score, **batch_setting}
        return filled

    def sample_config(self, model: str, label: str) -> SampleConfig:
        """The sample stage's settings for one of the models; its responses get `label` as their source."""
        return SampleConfig.model_validate({**self.sample.model_dump(), "model": model, "source": label})

    def score_config(self) -> ScoreConfig:
        """The score stage's settings."""
        return self.score


def _mapping(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value
