"""Settings of `rrhf eval`: how to sample from the models and how to score what they write."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from stages.score.config import Backend


class EvalConfig(BaseModel):
    """Settings of `rrhf eval`."""

    model: str = Field(description="The model to evaluate: a from_pretrained folder or hub name.")
    baseline: str | None = Field(None, description="A model to compare with (win rate); e.g. the one before training.")
    k: int = Field(1, ge=1, description="Responses per prompt and model.", json_schema_extra={"aliases": ["-k"]})
    sample_backend: Literal["hf", "vllm"] = Field("hf", description="How to sample from the models.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature; 0 decodes greedily.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(128, ge=1, description="Longest response, in tokens.")
    seed: int = Field(0, description="Seed of the sampling; both models draw with the same one.")
    batch_size: int = Field(16, ge=1, description="Prompts per sampling batch; records per scoring batch.")
    scorer: Backend = Field(description="Score backend: reward-model, judge, logprob or python.")
    scorer_model: str | None = Field(None, description="The scorer's model (reward model, judge, logprob policy).")
    fn: str | None = Field(None, description="python scorer: module:function or path.py:function.")
    rm_format: Literal["chat", "pair", "concat"] = Field("chat", description="reward-model input format.")
    judge_mode: Literal["pointwise", "listwise"] = Field("pointwise", description="judge: per response or per prompt.")
    judge_template: Path | None = Field(None, description="judge: a rubric template file.")
    base_url: str | None = Field(None, description="judge: OpenAI-compatible server URL.")
    api_key_env: str = Field("OPENAI_API_KEY", description="judge: environment variable holding the API key.")
    max_length: int = Field(2048, ge=8, description="Longest scored sequence and perplexity window.")
