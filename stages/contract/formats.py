"""Input formats users already have, detected from a record's fields and mapped onto the rrhf contract.

Pure functions: they take one decoded row and return the contract's fields, raising FormatError on a
malformed row; the caller adds the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stages.contract.schema import kind_of

FORMATS: dict[str, str] = {
    "rrhf": "rrhf records: {id?, prompt, responses: [{text, source, score?}]}",
    "trl-prompt": "TRL prompt-only: {prompt}",
    "rrhf-reference": "RRHF reference repo: {query, responses: [str], scores: [float]}",
    "trl-preference": "TRL preference: {prompt, chosen, rejected} (string or conversational)",
    "hh": "Anthropic HH / TRL implicit prompt: {chosen, rejected} full conversations",
}


# A response's fields a preference row carries as FIELD_chosen and FIELD_rejected (`rrhf rank --format pairs`).
PAIR_FIELDS = ("score", "finish_reason")
# The fields a column can be mapped onto (`--field TARGET=COLUMN`): those the formats above read.
FIELD_TARGETS = ("prompt", "responses", "chosen", "rejected", "query", "scores", "score_chosen", "score_rejected", "id")


class FormatError(ValueError):
    """A row does not fit its format; the message says what is wrong."""


@dataclass(frozen=True)
class InputOptions:
    """How to read an input: its format, which columns hold the formats' fields, and how many records."""

    format: str = "auto"
    fields: dict[str, str] = field(default_factory=dict)  # field -> the column that holds it
    limit: int | None = None

    def described(self) -> dict[str, Any]:
        """The options that change what is read, for the meta; empty when there are none."""
        return {k: v for k, v in (("fields", self.fields), ("limit", self.limit)) if v}


def parse_field_map(items: Iterable[str], prompt_field: str | None = None) -> dict[str, str]:
    """`FIELD=COLUMN` items (and `--prompt-field COLUMN`) as {field: column}; ValueError naming a bad item."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, column = item.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise ValueError(f"--field {item!r}: expected FIELD=COLUMN, e.g. prompt=question")
        if target not in FIELD_TARGETS:
            raise ValueError(f"--field {item!r}: '{target}' is not a field; choose one of {', '.join(FIELD_TARGETS)}")
        mapping[target] = column
    if prompt_field:
        if mapping.get("prompt", prompt_field) != prompt_field:
            raise ValueError(f"--prompt-field {prompt_field} and --field prompt={mapping['prompt']} disagree")
        mapping["prompt"] = prompt_field
    return mapping


def map_fields(row: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The row with each mapped column renamed to the field it holds (a field already there is replaced)."""
    if not fields:
        return row
    missing = [column for column in fields.values() if column not in row]
    if missing:
        seen = ", ".join(sorted(row)) or "none"
        raise FormatError(f"no column '{missing[0]}' (named by --field/--prompt-field); the row has {seen}")
    out = {k: v for k, v in row.items() if k not in fields.values()}
    return out | {target: row[column] for target, column in fields.items()}


def detect_format(row: dict[str, Any]) -> str:
    """Name the format of a row from its fields."""
    keys = set(row)
    if {"chosen", "rejected"} <= keys:
        return "trl-preference" if "prompt" in keys else "hh"
    if {"query", "responses"} <= keys:
        return "rrhf-reference"
    if "prompt" in keys:
        return "rrhf" if "responses" in keys else "trl-prompt"
    seen = ", ".join(sorted(keys)) or "none"
    raise FormatError(
        f"cannot tell the input format from its fields ({seen}); expected 'prompt' "
        "(with 'responses', or 'chosen'/'rejected'), 'query'+'responses'+'scores', or 'chosen'+'rejected'"
    )


def to_contract(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Map a row of format `fmt` onto the contract's fields (id optional); other fields are kept."""
    try:
        convert = _CONVERTERS[fmt]
    except KeyError:
        raise FormatError(f"unknown input format '{fmt}'; choose one of {', '.join(FORMATS)}") from None
    return convert(row)


def _native(row: dict[str, Any]) -> dict[str, Any]:
    _require(row, "prompt")
    out = dict(row)
    responses = row.get("responses", [])
    if not isinstance(responses, list):
        raise FormatError(f"'responses' must be a list, got {kind_of(responses)}")
    # A bare string is a response with unknown provenance.
    out["responses"] = [{"text": r, "source": "input"} if isinstance(r, str) else r for r in responses]
    return out


def _reference(row: dict[str, Any]) -> dict[str, Any]:
    _require(row, "query")
    responses, scores = row.get("responses"), row.get("scores")
    if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
        raise FormatError("'responses' must be a list of strings")
    if scores is None:
        scores = [None] * len(responses)
    elif not isinstance(scores, list):
        raise FormatError(f"'scores' must be a list, got {kind_of(scores)}")
    if len(scores) != len(responses):
        raise FormatError(f"'responses' has {len(responses)} items but 'scores' has {len(scores)}")
    out = {k: v for k, v in row.items() if k not in ("query", "responses", "scores")}
    out["prompt"] = row["query"]
    out["responses"] = [
        {"text": text, "source": "input"} | ({} if score is None else {"score": score})
        for text, score in zip(responses, scores, strict=True)
    ]
    return out


def _preference(row: dict[str, Any]) -> dict[str, Any]:
    _require(row, "prompt")
    prompt = row["prompt"]
    replies = [_reply(row, name, conversational=isinstance(prompt, list)) for name in ("chosen", "rejected")]
    return _pair_record(row, prompt, *replies)


def _hh(row: dict[str, Any]) -> dict[str, Any]:
    conversations = []
    for name in ("chosen", "rejected"):
        value = row.get(name)
        if isinstance(value, str):
            try:
                conversations.append(parse_hh_transcript(value))
            except ValueError as err:
                raise FormatError(f"'{name}' {err}") from None
        elif isinstance(value, list) and all(isinstance(m, dict) for m in value):
            conversations.append(value)
        else:
            raise FormatError(f"'{name}' must be a transcript string or a list of messages, got {kind_of(value)}")
    try:
        prompt, chosen, rejected = split_final_replies(*conversations)
    except ValueError as err:
        raise FormatError(str(err)) from None
    return _pair_record(row, prompt, chosen, rejected)


def _pair_record(row: dict[str, Any], prompt: Any, chosen: str, rejected: str) -> dict[str, Any]:
    consumed = ("prompt", "chosen", "rejected", *(f"{field}_{name}" for field in PAIR_FIELDS
                                                    for name in ("chosen", "rejected")))
    out = {k: v for k, v in row.items() if k not in consumed}
    out["prompt"] = prompt
    out["responses"] = [
        {"text": text, "source": name}
        | {field: row[f"{field}_{name}"] for field in PAIR_FIELDS if row.get(f"{field}_{name}") is not None}
        for name, text in (("chosen", chosen), ("rejected", rejected))
    ]
    return out


def _reply(row: dict[str, Any], name: str, conversational: bool) -> str:
    value = row.get(name)
    if isinstance(value, str) and not conversational:
        return value
    if conversational and isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], dict) and value[0].get("role") == "assistant":
            content = value[0].get("content")
            if isinstance(content, str):
                return content
        raise FormatError(f"'{name}' must be a list holding one assistant message")
    expected = "a list of messages, as the prompt is" if conversational else "a string, as the prompt is"
    raise FormatError(f"'{name}' must be {expected}; got {kind_of(value)}")


def _require(row: dict[str, Any], field: str) -> None:
    if row.get(field) is None:
        raise FormatError(f"'{field}' is {'null' if field in row else 'missing'}")


_CONVERTERS = {
    "rrhf": _native,
    "trl-prompt": _native,
    "rrhf-reference": _reference,
    "trl-preference": _preference,
    "hh": _hh,
}


# Anthropic HH transcripts and implicit-prompt conversations split into a shared prompt and two replies.
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
