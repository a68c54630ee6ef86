"""Refuse to start where a folder of the user's would be imported as rrhf's own `stages` package: checked before
`stages` is imported, so none of the user's code runs."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

SHADOW_EXIT = 2


def expected_stages() -> Path:
    """Where rrhf's own `stages` package is: beside this `rrhf_cli` package, in the same installation."""
    return Path(os.path.realpath(Path(__file__).resolve().parent.parent / "stages"))


def found_stages() -> Path | None:
    """Where `import stages` would load from, found without importing it (None where nothing would)."""
    spec = importlib.util.find_spec("stages")
    if spec is None:
        return None
    if spec.submodule_search_locations and (spec.origin is None or spec.origin.endswith("__init__.py")):
        return Path(os.path.realpath(next(iter(spec.submodule_search_locations))))
    return Path(os.path.realpath(spec.origin)) if spec.origin else None


def shadowing(found: Path | None, expected: Path) -> str | None:
    """The one line that refuses a `stages` found elsewhere than `expected`; None where it is rrhf's own.

    >>> shadowing(Path("/srv/rrhf/stages"), Path("/srv/rrhf/stages")) is None
    True
    >>> shadowing(Path("/home/me/stages"), Path("/srv/rrhf/stages")).split(";")[0]
    "rrhf: error: /home/me/stages would be imported in place of rrhf's own stages package (/srv/rrhf/stages)"
    """
    if found == expected:
        return None
    if found is None:
        return f"rrhf: error: rrhf's own stages package ({expected}) cannot be imported; reinstall rrhf"
    return (f"rrhf: error: {found} would be imported in place of rrhf's own stages package ({expected}); rename it, "
            "or run rrhf from another folder with it off PYTHONPATH")


def refuse_shadowed_stages() -> None:
    """Exit 2 with one line on stderr where `stages` would be imported from anywhere but rrhf's own installation."""
    line = shadowing(found_stages(), expected_stages())
    if line is not None:
        if sys.stderr is not None:
            print(line, file=sys.stderr)
        raise SystemExit(SHADOW_EXIT)
