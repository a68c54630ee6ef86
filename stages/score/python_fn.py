"""The python scorer: a user function `(prompt, response) -> float` for rule-based or verifiable rewards."""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stages.core.errors import Location, RrhfError, UsageError
from stages.core.runs import Failure
from stages.core.schema import Record
from stages.lm.prompts import as_plain
from stages.score.config import ScoreConfig


def load_function(spec: str) -> Callable[[Any, str], Any]:
    """`package.module:function` or `path/to/file.py:function`, imported."""
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise UsageError(f"--fn {spec}: expected module:function or path/to/file.py:function")
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"--fn {spec}: no such file {path}")
            module_spec = importlib.util.spec_from_file_location(f"rrhf_user_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[module_spec.name] = module  # type: ignore[union-attr]
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
    except UsageError:
        raise
    except Exception as err:  # the user's module may fail to import in any way
        raise UsageError(f"--fn {spec}: cannot import {target} ({type(err).__name__}: {err})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UsageError(f"--fn {spec}: {target} has no function '{name}'")
    return function


class PythonScorer:
    """Calls the function once per response; the prompt is passed as in the record (string or messages)."""

    def __init__(self, config: ScoreConfig) -> None:
        self.spec = config.fn or ""
        self.function = load_function(self.spec)

    def close(self) -> None:
        """Nothing to release: the function holds what it holds for the process."""

    def score(self, records: Sequence[Record], locations: Sequence[Location]) -> list[list[float | Failure]]:
        out: list[list[float | Failure]] = []
        for record, where in zip(records, locations, strict=True):
            prompt = as_plain(record.prompt)
            values: list[float | Failure] = []
            for index, response in enumerate(record.responses):
                try:
                    value = self.function(prompt, response.text)
                except Exception as err:  # the user's code: report which record broke it
                    raise RrhfError(
                        f"{where}: --fn {self.spec} raised {type(err).__name__}: {err} on responses[{index}]"
                    ) from None
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise RrhfError(
                        f"{where}: --fn {self.spec} returned {value!r} for responses[{index}]; expected a finite number"
                    )
                values.append(float(value))
            out.append(values)
        return out
