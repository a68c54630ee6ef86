"""The sample stage: k candidate responses per prompt from transformers, vLLM or an OpenAI-compatible API."""
