"""Settings groups of the outside engines, composed into the configs of the stages that use them.

Plain pydantic models with no heavy imports: the CLI builds its flags from them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from stages.runtime.config import OPERATIONAL


class ApiSettings(BaseModel):
    """How to reach an OpenAI-compatible server and how hard to retry it."""

    base_url: str | None = Field(
        None, description="API: server URL, e.g. http://127.0.0.1:8000/v1 (unset: OpenAI's)."
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="API: environment variable holding the API key.")
    concurrency: int = Field(8, ge=1, description="API: requests in flight at once.", json_schema_extra=OPERATIONAL)
    max_retries: int = Field(
        6,
        ge=0,
        description="API: retries of a request on 429, 5xx, timeouts and dropped connections.",
        json_schema_extra=OPERATIONAL,
    )
    backoff: float = Field(
        1.0, gt=0, description="API: first retry delay in seconds; doubles, with jitter.", json_schema_extra=OPERATIONAL
    )
    timeout: float = Field(
        120.0, gt=0, description="API: seconds before a request counts as timed out.", json_schema_extra=OPERATIONAL
    )


class VllmSettings(BaseModel):
    """How an in-process vLLM engine uses the GPUs."""

    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per model.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vllm: share of GPU memory to use.", json_schema_extra=OPERATIONAL
    )
    enforce_eager: bool = Field(
        False, description="vllm: run the model eagerly, without torch.compile and CUDA graphs: a start faster by "
        "a minute or more, slower steps; for short runs (vLLM's CPU build recompiles at every start).",
    )
