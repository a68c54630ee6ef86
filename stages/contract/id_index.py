"""Compact structures for the ids of a large input: a list that stores them as one UTF-8 buffer, and an index
from id to a number (a line's offset, an input position) held as two integer arrays. At HH's 160k records they
take a few MiB where Python strings, dicts and sets take tens."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
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
    """Ids mapped to integers through their hashes, sorted: a lookup is a binary search, and memory 24 bytes per
    id. The index holds no ids, so it names candidates; the caller checks each against what the value points to
    (one comparison settles the rare hash collision)."""

    def __init__(self, hashes: array, values: array) -> None:
        """`hashes[i]` is `id_hash` of the id whose value is `values[i]`."""
        import numpy as np

        self._np = np
        keys = np.frombuffer(hashes, dtype=np.int64) if len(hashes) else np.zeros(0, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        stored = np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, dtype=np.int64)
        self._values = stored[order]

    @classmethod
    def positions(cls, ids: IdList | Sequence[str]) -> IdIndex:
        """Each id's position in `ids`; a candidate `p` is the id's when `ids[p]` is."""
        return cls(array("q", map(id_hash, ids)), array("q", range(len(ids))))

    def candidates(self, record_id: str) -> Iterator[int]:
        """The values filed under `record_id`'s hash, in the order they were given."""
        key = id_hash(record_id)
        at = int(self._np.searchsorted(self._keys, key))
        while at < len(self._keys) and self._keys[at] == key:
            yield int(self._values[at])
            at += 1


def id_hash(record_id: str) -> int:
    """The 64-bit key an IdIndex files an id under (stable within one process, which is all it needs)."""
    return hash(record_id)
