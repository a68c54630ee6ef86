"""Candidate sets from many sources: responses carried from the input, and records joined by id. Pure logic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from stages.contract.errors import BadInput, Location
from stages.contract.schema import Record, Response, without_rank_fields


def included_responses(record: Record, names: Sequence[str]) -> list[Response]:
    """The input's own responses named by `--include-field`: responses whose source is the name (as the hh and
    TRL preference readers make them), else the record's field of that name, where null or [] gives none (a
    source that answered some prompts only); ValueError if neither exists or the field holds no text."""
    out: list[Response] = []
    fields = record.extra
    for name in names:
        matched = [r for r in record.responses if r.source == name]
        if matched:
            out.extend(matched)
            continue
        if name in fields and fields[name] in (None, []):
            continue
        texts = _texts(fields.get(name))
        if texts is None:
            what = "no" if name not in fields else "an unreadable"
            raise ValueError(
                f"--include-field '{name}': the record has {what} '{name}' field (a string, a list of strings, a "
                f"conversation, or null where this prompt has none) and no response with source '{name}'"
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


def join_record(
    first: Record, others: Sequence[tuple[Record, Location]], counts: Counter[str], dedupe: bool = True
) -> Record:
    """One id's records from several inputs joined: the first's fields win and responses are concatenated; with
    `dedupe`, a response whose (text, source) pair an earlier input already gave is dropped (repeats inside one
    input are kept: a model may well give the same answer twice). A later record whose prompt differs is bad
    input, named at that record. Adds to `records_joined` and `duplicates_dropped`."""
    # The records are fresh from their inputs: the joined one takes over their responses without copying them.
    joined = first.model_copy(update={"responses": list(first.responses)})
    for record, where in others:
        if record.prompt != joined.prompt:
            raise BadInput(where, f"id '{record.id}' was already joined with a different prompt")
        counts["records_joined"] += 1
        earlier = {(r.text, r.source) for r in joined.responses}
        for response in record.responses:
            if dedupe and (response.text, response.source) in earlier:
                counts["duplicates_dropped"] += 1
                continue
            joined.responses.append(response)
        for key, value in record.extra.items():
            if key not in joined.extra:
                setattr(joined, key, value)
    # Responses other inputs added to: rank's pairs no longer describe the record.
    return without_rank_fields(joined)
