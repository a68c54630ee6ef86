"""Anthropic HH transcripts and implicit-prompt conversations split into a shared prompt and two replies."""

from __future__ import annotations

import re
from typing import Any

_TURN = re.compile(r"\n\n(Human|Assistant):[ \t]?")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh_transcript(text: str) -> list[dict[str, str]]:
    """Turn `\\n\\nHuman: ...\\n\\nAssistant: ...` text into chat messages; ValueError if it is not one."""
    parts = _TURN.split(text)
    if parts[0].strip():
        raise ValueError("is not an HH transcript: it must start with '\\n\\nHuman: '")
    if len(parts) < 3:
        raise ValueError("is not an HH transcript: no 'Human:'/'Assistant:' turns found")
    return [{"role": _ROLES[role], "content": content} for role, content in zip(parts[1::2], parts[2::2], strict=True)]


def split_final_replies(
    chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str, str]:
    """Split two conversations that differ only in their last turn: (shared prompt, chosen reply, rejected reply)."""
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        if len(conversation) < 2 or conversation[-1].get("role") != "assistant":
            raise ValueError(f"'{name}' must end with an assistant turn after at least one earlier turn")
    prompt = chosen[:-1]
    if _strip(rejected[:-1]) != _strip(prompt):
        raise ValueError("'chosen' and 'rejected' differ before their final assistant turn")
    return prompt, chosen[-1]["content"], rejected[-1]["content"]


def _strip(messages: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    # Trailing whitespace differences are common in HH and carry no meaning.
    return [(m.get("role"), str(m.get("content", "")).rstrip()) for m in messages]
