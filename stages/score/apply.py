"""Putting a scorer's values onto records: `score`, `scores.NAME` and the primary choice. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from rrhf_cli.errors import BadInput, Location
from rrhf_cli.schema import Record


class ScoreFailure:
    """A response the scorer could not score; `raw` keeps what it answered."""

    def __init__(self, reason: str, raw: str | None = None) -> None:
        self.reason, self.raw = reason, raw


def apply_scores(
    record: Record,
    values: Sequence[float | ScoreFailure],
    as_name: str | None,
    primary: str | None,
    where: Location,
) -> Record:
    """A copy of `record` with each response's value set: under `scores[as_name]` when named, and as `score`
    unless `primary` names another of `scores`. Failed responses lose `score` and carry the failure."""
    if len(values) != len(record.responses):
        raise ValueError(f"{len(values)} values for {len(record.responses)} responses")
    responses = []
    for index, (response, value) in enumerate(zip(record.responses, values, strict=True)):
        fields = response.model_dump(exclude_unset=True)
        fields.pop("score_error", None)
        fields.pop("judge_raw", None)
        if isinstance(value, ScoreFailure):
            fields.pop("score", None)
            fields["score_error"] = value.reason
            if value.raw is not None:
                fields["judge_raw"] = value.raw
            responses.append(fields)
            continue
        scores = dict(fields.get("scores") or {})
        if as_name:
            scores[as_name] = value
            fields["scores"] = scores
        if primary and primary != as_name:
            if primary not in scores:
                raise BadInput(where, f"'responses[{index}]' has no scores.{primary} for --primary")
            fields["score"] = scores[primary]
        else:
            fields["score"] = value
        responses.append(fields)
    return Record.model_validate(record.to_json_dict() | {"responses": responses})
