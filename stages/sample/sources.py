"""Candidate sets from many sources: responses carried from the input, and records joined by id. Pure logic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from stages.core.errors import BadInput, Location
from stages.core.schema import Record, Response, without_rank_fields


def included_responses(record: Record, names: Sequence[str]) -> list[Response]:
    """The input's own responses named by `--include-field`: responses whose source is the name (as the hh and
    TRL preference readers make them), else the record's field of that name; ValueError if neither exists."""
    out: list[Response] = []
    for name in names:
        matched = [r for r in record.responses if r.source == name]
        if matched:
            out.extend(matched)
            continue
        texts = _texts(record.extra.get(name))
        if texts is None:
            raise ValueError(
                f"--include-field '{name}': the record has no '{name}' field (a string, a list of strings or "
                f"a conversation) and no response with source '{name}'"
            )
        out.extend(Response(text=text, source=name) for text in texts)
    return out


def _texts(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) and "content" in v for v in value):
        # A conversation (TRL implicit-prompt style): its final assistant turn is the response.
        replies = [v["content"] for v in value if v.get("role") == "assistant" and isinstance(v["content"], str)]
        return replies[-1:] or None
    return None


def join_by_id(
    inputs: Sequence[tuple[Sequence[Record], Sequence[Location]]], dedupe: bool = True
) -> tuple[list[Record], Counter[str]]:
    """Join records from several inputs by id, in order of first appearance; responses are concatenated.

    With `dedupe`, a response whose (text, source) pair already came from an earlier input is dropped (repeats
    inside one input are kept: a model may well give the same answer twice). The first input's fields win.
    A shared id whose prompts differ is bad input, named at the later record.
    """
    joined: dict[str, Record] = {}
    changed: set[str] = set()  # ids whose responses other inputs added to: rank's pairs no longer describe them
    counts: Counter[str] = Counter()
    for records, locations in inputs:
        seen_before = {rid: {(r.text, r.source) for r in rec.responses} for rid, rec in joined.items()}
        for record, where in zip(records, locations, strict=True):
            first = joined.get(record.id)
            if first is None:
                joined[record.id] = record.model_copy(deep=True)
                continue
            if first.prompt != record.prompt:
                raise BadInput(where, f"id '{record.id}' was already joined with a different prompt")
            counts["records_joined"] += 1
            changed.add(record.id)
            earlier = seen_before.get(record.id, set())
            for response in record.responses:
                if dedupe and (response.text, response.source) in earlier:
                    counts["duplicates_dropped"] += 1
                    continue
                first.responses.append(response.model_copy())
            for key, value in record.extra.items():
                if key not in first.extra:
                    setattr(first, key, value)
    return [without_rank_fields(r) if r.id in changed else r for r in joined.values()], counts
