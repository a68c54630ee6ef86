"""Compact structures for the ids of a large input: a list that stores them as one UTF-8 buffer, and an index
from id to a number (a line's offset, an input position) held as two integer arrays. At HH's 160k records they
take a few MiB where Python strings, dicts and sets take tens."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import overload


class IdList:
    """Strings appended in order, kept as one buffer and their end offsets (the bytes plus 8 per id)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._data = bytearray()
        self._ends = array("q")
        for record_id in ids:
            self.append(record_id)

    def append(self, record_id: str) -> None:
        """Add one id at the end."""
        self._data += record_id.encode("utf-8")
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> IdList: ...

    def __getitem__(self, index: int | slice) -> str | IdList:
        if isinstance(index, slice):
            return IdList(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        start = self._ends[index - 1] if index else 0
        return self._data[start : self._ends[index]].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        start = 0
        data = self._data
        for end in self._ends:
            yield data[start:end].decode("utf-8")
            start = end


class IdIndex:
    """Ids mapped to integers by their hashes, sorted: a lookup costs a binary search and one `check` of the
    candidate (which settles the rare hash collision), and memory 24 bytes per id."""

    def __init__(self, hashes: array, values: array, check: Callable[[int, str], bool]) -> None:
        """`hashes[i]` is `hash(id)` of the id whose value is `values[i]`; `check(value, id)` says whether the
        value really belongs to the id (read back from where the value points)."""
        import numpy as np

        self._np = np
        keys = np.frombuffer(hashes, dtype=np.int64) if len(hashes) else np.zeros(0, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        stored = np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, dtype=np.int64)
        self._values = stored[order]
        self._check = check

    def get(self, record_id: str) -> int | None:
        """The value of `record_id`, or None when it has none."""
        key = hash(record_id)
        at = int(self._np.searchsorted(self._keys, key))
        while at < len(self._keys) and self._keys[at] == key:
            value = int(self._values[at])
            if self._check(value, record_id):
                return value
            at += 1
        return None


def id_hash(record_id: str) -> int:
    """The 64-bit key an IdIndex files an id under (stable within one process, which is all it needs)."""
    return hash(record_id)
