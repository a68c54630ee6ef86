"""Running out of memory, host or CUDA, as one line: the stage, what is kept, and which settings to lower."""

from __future__ import annotations

from stages.contract.errors import RunInterrupted

# What shrinks a stage's peak memory, most effective first.
LOWER = {
    "sample": "--batch-size, -k or --max-new-tokens (vllm: --gpu-memory-utilization, --max-model-len)",
    "score": "--batch-size or --max-length",
    "train": "--queries-per-batch (with --grad-accum to keep the batch), --max-length or --loss-chunk-size, or "
             "train a LoRA adapter (--lora-r)",
    "eval": "--batch-size, -k or --max-new-tokens",
}
_HOST = ("DefaultCPUAllocator: can't allocate memory", "std::bad_alloc")


def memory_kind(err: BaseException) -> str | None:
    """'CUDA' or 'host' when `err` is an allocation that failed, else None.

    >>> memory_kind(MemoryError()), memory_kind(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    ('host', 'CUDA')
    >>> memory_kind(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried")), memory_kind(
    ...     RuntimeError("shape mismatch"))
    ('host', None)
    """
    if isinstance(err, MemoryError):
        return "host"
    if not isinstance(err, RuntimeError):
        return None
    text = str(err)
    if type(err).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text:  # torch.OutOfMemoryError
        return "CUDA"
    return "host" if any(mark in text for mark in _HOST) else None


def out_of_memory(stage: str, kind: str, kept: str = "") -> RunInterrupted:
    """The one line a run that ran out of memory ends with (exit status 1).

    >>> str(out_of_memory("score", "host", "12 of 40 records are kept in s.jsonl.partial"))
    'score: out of memory (host); 12 of 40 records are kept in s.jsonl.partial; lower --batch-size or --max-length'
    """
    advice = f"lower {LOWER[stage]}" if stage in LOWER else "use a machine with more memory"
    return RunInterrupted(f"{stage}: out of memory ({kind}); " + (f"{kept}; " if kept else "") + advice)
