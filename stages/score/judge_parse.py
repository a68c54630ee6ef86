"""Reading a judge's answer: JSON or a `Score: N` line. Pure functions; ValueError when unreadable."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_SCORE_LINE = re.compile(r"score\s*(?:\d+\s*)?[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_pointwise(text: str) -> float:
    """One score: a JSON object's `score` (or `rating`), else the last `Score: N` in the text."""
    for value in _json_values(text):
        if isinstance(value, dict):
            for key in ("score", "rating"):
                if key in value:
                    return _finite(value[key])
        if _is_number(value):
            return _finite(value)
    matches = _SCORE_LINE.findall(text)
    if matches:
        return _finite(matches[-1])
    raise ValueError("no score found: expected JSON with \"score\" or a line 'Score: N'")


def parse_listwise(text: str, k: int) -> list[float]:
    """k scores, in response order: JSON `{"scores": [...]}`, a JSON list, or k `Score: N` lines."""
    for value in _json_values(text):
        if isinstance(value, dict):
            value = value.get("scores", value.get("ratings"))
        if isinstance(value, list) and value:
            if len(value) != k:
                raise ValueError(f"expected {k} scores, the answer has {len(value)}")
            return [_finite(v) for v in value]
    matches = _SCORE_LINE.findall(text)
    if len(matches) == k:
        return [_finite(m) for m in matches]
    raise ValueError(f"expected {k} scores as JSON {{\"scores\": [...]}} or {k} lines 'Score: N', found {len(matches)}")


def _json_values(text: str) -> list[Any]:
    # The answer may wrap its JSON in prose or a code fence: try every top-level {...} or [...] span.
    decoder = json.JSONDecoder()
    values, index = [], 0
    while index < len(text):
        starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        values.append(value)
        index = end
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"score {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"score {value!r} is not a finite number")
    return number
