"""Pydantic models of the artifact records: the one contract every stage reads and writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator


def _reject_bool(value: Any) -> Any:
    # JSON true/false would otherwise pass as 1.0/0.0, hiding a wrong column.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Score = Annotated[float, BeforeValidator(_reject_bool), Field(allow_inf_nan=False)]
"""A finite float reward; booleans, NaN and infinities are rejected."""


class _Open(BaseModel):
    """A record part that keeps the fields it does not know."""

    model_config = ConfigDict(extra="allow")

    @property
    def extra(self) -> dict[str, Any]:
        """The input fields outside the contract, in their original order."""
        return dict(self.__pydantic_extra__ or {})


class Message(_Open):
    """One chat turn, as in the OpenAI and TRL conversational formats."""

    role: str
    content: str


def _prompt_branch(value: Any) -> str:
    return "string-prompt" if isinstance(value, str) else "message-prompt"


# A tagged union so a bad message list reports the message's problem, not "should be a string" too.
Prompt = Annotated[
    Annotated[str, Tag("string-prompt")] | Annotated[list[Message], Tag("message-prompt")],
    Discriminator(_prompt_branch),
]
PROMPT_TAGS = ("string-prompt", "message-prompt")


class Response(_Open):
    """One candidate response to a prompt; `score` is set by the score stage."""

    # Assignment is validated so a stage can never write a NaN score.
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    text: str
    source: str = "input"
    score: Score | None = None
    scores: dict[str, Score] | None = None
    # OpenAI's and vLLM's field: "length" when the token limit cut the text, so it is not an ended answer. Any
    # string is kept, as other tools write their own ("eos_token", "content_filter"); only "length" means cut.
    finish_reason: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the response is a whole answer, so a model reading it sees an end token after it: unless the
        sampler's token limit cut it (`finish_reason` "length"); a response of unknown origin counts as ended."""
        return self.finish_reason != "length"


class Record(_Open):
    """One prompt and its candidate responses; unknown fields are carried through unchanged."""

    id: str = Field(min_length=1)
    prompt: Prompt
    responses: list[Response] = Field(default_factory=list)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
            return value
        if isinstance(value, list) and not value:
            raise ValueError("is an empty list of messages")
        raise ValueError(f"must be a string or a list of {{role, content}} messages, got {kind_of(value)}")

    def to_json_dict(self) -> dict[str, Any]:
        """The record as written to an artifact: contract fields first, then carried fields."""
        # Python mode is JSON here (every value came from JSON or is a str or finite float) and twice as fast;
        # unset fields are left out of the responses too.
        row = self.model_dump(exclude_unset=True)
        if "responses" not in row:
            row = {"id": row.pop("id"), "prompt": row.pop("prompt"), "responses": [], **row}
        return row


RANK_FIELDS = ("pairs",)
"""What `rank` writes on a record about its responses as they were scored then: the preference pairs."""
RESPONSE_RANK_FIELDS = ("raw_score",)
"""What `rank --normalize` writes on each response: the score before normalising."""


def without_rank_fields(record: Record) -> Record:
    """The record without what `rank` wrote about its responses: a stage that adds, replaces or rescores
    responses makes those pairs stale, and a stale pair would train against the new scores."""
    if not any(key in (record.__pydantic_extra__ or {}) for key in RANK_FIELDS) and not any(
        key in (response.__pydantic_extra__ or {}) for response in record.responses for key in RESPONSE_RANK_FIELDS
    ):
        return record
    row = record.to_json_dict()
    row = {k: v for k, v in row.items() if k not in RANK_FIELDS}
    row["responses"] = [{k: v for k, v in r.items() if k not in RESPONSE_RANK_FIELDS} for r in row["responses"]]
    return Record.model_validate(row)


def best_index(scores: Sequence[float]) -> int:
    """The index of a record's best response: the first of the top score, the one rule `rrhf train`'s SFT term,
    `rrhf view` and the summaries share (`losses.common.first_argmax_per_query` is its batched form).

    >>> best_index([0.2, 0.9, 0.9])
    1
    """
    return max(range(len(scores)), key=scores.__getitem__)


def kind_of(value: Any) -> str:
    """A JSON-flavoured name for a value's type, for error messages."""
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
