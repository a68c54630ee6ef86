"""Environment variables set for the length of a block and restored after it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def scoped_environ(values: Mapping[str, str], keep_set: bool = False) -> Iterator[None]:
    """Set `values` in `os.environ` inside the block and restore what was there (or its absence) after it; with
    `keep_set`, a variable the user already set keeps the user's value."""
    before = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if not (keep_set and before[name] is not None):
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
