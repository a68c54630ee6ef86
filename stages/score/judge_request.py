"""Which sampling parameters a judge request carries, and adapting them once to a server that refuses them.

Reasoning models (OpenAI's o-series, GPT-5) refuse `max_tokens` (they take `max_completion_tokens`) and any
temperature but their default. Pure functions: the judge keeps the current parameters and swaps them when a
400 names one it can change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

MaxTokensParam = Literal["auto", "max_tokens", "max_completion_tokens"]
TemperatureChoice = Literal["auto", "zero", "omit"]


@dataclass(frozen=True)
class RequestParams:
    """What a judge request sends beyond the messages; `auto` settings may still change once."""

    max_tokens_param: str = "max_tokens"
    temperature: bool = True
    adapt_max_tokens: bool = True
    adapt_temperature: bool = True


def initial_params(max_tokens_param: MaxTokensParam, temperature: TemperatureChoice) -> RequestParams:
    """The parameters of the first request: `auto` starts from the classic ones and may adapt."""
    return RequestParams(
        max_tokens_param="max_tokens" if max_tokens_param == "auto" else max_tokens_param,
        temperature=temperature != "omit",
        adapt_max_tokens=max_tokens_param == "auto",
        adapt_temperature=temperature == "auto",
    )


def request_kwargs(params: RequestParams, max_tokens: int) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` these parameters stand for."""
    kwargs: dict[str, Any] = {params.max_tokens_param: max_tokens}
    if params.temperature:
        kwargs["temperature"] = 0.0
    return kwargs


def adapted(params: RequestParams, message: str) -> RequestParams | None:
    """New parameters when a refusal `message` (a 400's text) names one that `auto` may change, else None."""
    if params.adapt_max_tokens and re.search(r"\bmax_tokens\b", message) and "max_completion_tokens" in message:
        return replace(params, max_tokens_param="max_completion_tokens", adapt_max_tokens=False)
    if params.adapt_temperature and params.temperature and re.search(r"\btemperature\b", message, re.IGNORECASE):
        return replace(params, temperature=False, adapt_temperature=False)
    return None
