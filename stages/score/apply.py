"""Putting a scorer's values onto records: `score`, `scores.NAME` and the primary choice. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from stages.contract.errors import BadInput, Location
from stages.contract.schema import Record, without_rank_fields
from stages.runtime.runs import Failure


def apply_scores(
    record: Record,
    values: Sequence[float | Failure],
    as_name: str | None,
    primary: str | None,
    where: Location,
    keep_score: bool = False,
) -> Record:
    """A copy of `record` with each response's value set: under `scores[as_name]` when named, and as `score`
    unless `primary` names another of `scores` or `keep_score` leaves `score` (and the rank's pairs) as they
    were. Failed responses lose `score` and carry the failure."""
    if len(values) != len(record.responses):
        raise ValueError(f"{len(values)} values for {len(record.responses)} responses")
    responses = []
    for index, (response, value) in enumerate(zip(record.responses, values, strict=True)):
        fields = response.model_dump(exclude_unset=True)
        fields.pop("score_error", None)
        fields.pop("judge_raw", None)
        if isinstance(value, Failure):
            fields.pop("score", None)
            fields["score_error"] = value.error
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
        elif not keep_score:
            fields["score"] = value
        responses.append(fields)
    scored = Record.model_validate(record.to_json_dict() | {"responses": responses})
    # The scores that rank stay as they were with `keep_score`, so do the pairs `rrhf rank` chose from them.
    return scored if keep_score else without_rank_fields(scored)
