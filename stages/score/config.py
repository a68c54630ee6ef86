"""Settings of `rrhf score`: the flags, the config-file keys and the meta all come from this model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

# Settings that change how a run goes, not what it writes: a rerun that changes only these resumes the journal.
_OPERATIONAL = {"operational": True}

Backend = Literal["reward-model", "judge", "logprob", "python"]
RmFormat = Literal["chat", "pair", "concat"]


class ScoreConfig(BaseModel):
    """Settings of `rrhf score`."""

    backend: Backend = Field(description="Scorer: reward-model, judge (an LLM behind an API), logprob, python.")
    model: str | None = Field(None, description="Reward model, policy (logprob) or judge model name.")
    as_name: str | None = Field(
        None, description="Also keep the value under scores.NAME.", json_schema_extra={"aliases": ["--as"]}
    )
    primary: str | None = Field(None, description="Which scores.NAME becomes `score` (default: this run's value).")
    batch_size: int | None = Field(
        None,  # filled in after validation, so it is always set once the config exists
        ge=1,
        description="Sequences per forward pass; records per journal batch (unset: 16; 256 with --engine vllm, "
        "whose scheduler batches for itself).",
    )
    max_length: int = Field(
        2048, ge=8, description="Longest scored sequence (at most the model's context); the prompt is cut first."
    )
    # reward-model
    rm_format: RmFormat = Field(
        "chat", description="RM input: its chat template, a (prompt, response) text pair, or plain concatenation."
    )
    engine: Literal["transformers", "vllm"] = Field(
        "transformers", description="Reward-model engine: transformers, or vllm (its pooling runner, on a GPU)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm engine: GPUs per model.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vllm engine: share of GPU memory to use.", json_schema_extra=_OPERATIONAL
    )
    sort_by_length: bool = Field(True, description="Batch sequences of similar length together.")
    # reward-model and logprob
    pack_prompt: Literal["auto", "on", "off"] = Field(
        "auto", description="Encode each prompt once for its k responses (4D mask; vllm: prefix caching)."
    )
    bf16: bool | None = Field(None, description="bfloat16 weights; default: on CUDA only.")
    length_penalty: float = Field(1.0, ge=0, description="logprob: alpha in logp / |y|^alpha.")
    # python
    fn: str | None = Field(
        None, description="python: module:function or path/to/file.py:function, (prompt, response) -> float."
    )
    # judge
    base_url: str | None = Field(None, description="judge: OpenAI-compatible server; OpenAI's when unset.")
    api_key_env: str = Field("OPENAI_API_KEY", description="judge: environment variable holding the API key.")
    judge_template: Path | None = Field(None, description="judge: a rubric template replacing the built-in one.")
    judge_mode: Literal["pointwise", "listwise"] = Field(
        "pointwise", description="judge: one call per response, or all k responses of a prompt in one call."
    )
    concurrency: int = Field(8, ge=1, description="judge: requests in flight.", json_schema_extra=_OPERATIONAL)
    max_retries: int = Field(
        6, ge=0, description="judge: retries of a failed or unparsable answer.", json_schema_extra=_OPERATIONAL
    )
    backoff: float = Field(
        1.0, gt=0, description="judge: first retry delay in seconds; doubles, with jitter.",
        json_schema_extra=_OPERATIONAL,
    )
    timeout: float = Field(120.0, gt=0, description="judge: seconds per request.", json_schema_extra=_OPERATIONAL)
    max_tokens: int = Field(512, ge=1, description="judge: longest answer.")
    allow_failures: bool = Field(
        False, description="Write responses the judge failed on (unscored) and exit 0.", json_schema_extra=_OPERATIONAL
    )
    seed: int = Field(0, description="Seed (judge sampling where the server supports it).")

    @model_validator(mode="after")
    def _needs(self) -> ScoreConfig:
        if self.backend == "python" and not self.fn:
            raise ValueError("--backend python needs --fn module:function or path.py:function")
        if self.backend != "python" and not self.model:
            raise ValueError(f"--backend {self.backend} needs --model")
        if self.engine == "vllm" and self.backend != "reward-model":
            raise ValueError(f"--engine vllm is for --backend reward-model; --backend {self.backend} runs on its own")
        if self.batch_size is None:
            self.batch_size = 256 if self.backend == "reward-model" and self.engine == "vllm" else 16
        return self
