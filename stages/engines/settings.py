"""Settings groups of the outside engines, composed into the configs of the stages that use them.

Plain pydantic models with no heavy imports: the CLI builds its flags from them.
"""

from __future__ import annotations

from pydantic import BaseModel

from stages.runtime.config import setting


class ApiSettings(BaseModel):
    """How to reach an OpenAI-compatible server and how hard to retry it."""

    base_url: str | None = setting(
        None, description="API: server URL, e.g. http://127.0.0.1:8000/v1 (unset: OpenAI's)."
    )
    api_key_env: str = setting("OPENAI_API_KEY", description="API: environment variable holding the API key.")
    concurrency: int = setting(8, ge=1, description="API: requests in flight at once.", operational=True)
    max_retries: int = setting(
        6,
        ge=0,
        description="API: retries of a request on 429, 5xx, timeouts and dropped connections.",
        operational=True,
    )
    backoff: float = setting(
        1.0, gt=0, description="API: first retry delay in seconds; doubles, with jitter.", operational=True
    )
    timeout: float = setting(
        120.0, gt=0, description="API: seconds before a request counts as timed out.", operational=True
    )


class VllmSettings(BaseModel):
    """How an in-process vLLM engine uses the GPUs."""

    tensor_parallel_size: int = setting(1, ge=1, description="vllm: GPUs per model.")
    gpu_memory_utilization: float = setting(
        0.9, gt=0, le=1, description="vllm: share of GPU memory to use.", operational=True
    )
    enforce_eager: bool = setting(
        False, description="vllm: run the model eagerly, without torch.compile and CUDA graphs: a start faster by "
        "a minute or more, slower steps; for short runs (vLLM's CPU build recompiles at every start).",
    )
