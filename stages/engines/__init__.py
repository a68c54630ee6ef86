"""The outside engines the stages drive: vLLM in-process and OpenAI-compatible HTTP APIs."""
