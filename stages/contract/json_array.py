"""A .json input's array read an item at a time, and the words for JSON that cannot be read: memory holds an item
and a block of text, never the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stages.contract.errors import BadInput, Location

MAX_DEPTH = 100
Row = tuple[Location, Any]


def json_problem(err: json.JSONDecodeError) -> str:
    """json's message in rrhf's words, with the column."""
    # Some of json's messages end in "at" ("Unterminated string starting at"), followed by a position.
    return f"invalid JSON ({err.msg.removesuffix(' at')} at column {err.colno})"


def too_deep() -> str:
    """What a value nested past MAX_DEPTH is called."""
    return f"nested too deeply (more than {MAX_DEPTH} levels)"


def json_array_rows(path: Path, text: IO[str]) -> Iterator[Row]:
    """The items of a JSON array, decoded one at a time from a window of the text: memory holds an item and a
    block, never the file."""
    items = _ArrayWindow(path, text)
    items.expect_array()
    number = 0
    while (item := items.next_item()) is not _END:
        number += 1
        yield Location(str(path), number, unit="item"), item


_END = object()
_BLOCK_CHARS = 1 << 20


class _ArrayWindow:
    """The text of a .json file seen through a sliding window, decoded a value at a time."""

    def __init__(self, path: Path, text: IO[str]) -> None:
        self.path, self.text = path, text
        self.window, self.at, self.line = "", 0, 1  # `line`: the line `window` starts on
        self.eof = False
        self.first = True  # no item read yet: none needs a comma before it
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            block = self.text.read(_BLOCK_CHARS)
        except UnicodeDecodeError:
            raise BadInput(Location(str(self.path), self._line_at(len(self.window))), "not UTF-8 text") from None
        if self.at > _BLOCK_CHARS:  # what was decoded goes, so the window stays about a block
            self.line += self.window.count("\n", 0, self.at)
            self.window, self.at = self.window[self.at :], 0
        self.window += block
        self.eof = not block
        return bool(block)

    def _line_at(self, index: int) -> int:
        return self.line + self.window.count("\n", 0, index)

    def _next_char(self) -> str:
        """The next character that is not white space, not consumed ('' at the end of the text)."""
        while True:
            while self.at < len(self.window) and self.window[self.at] in " \t\r\n":
                self.at += 1
            if self.at < len(self.window) or not self._more():
                return self.window[self.at : self.at + 1]

    def _refuse(self, problem: str, index: int | None = None) -> BadInput:
        return BadInput(Location(str(self.path), self._line_at(self.at if index is None else index)), problem)

    def expect_array(self) -> None:
        """Step past the opening bracket; BadInput where the text holds no array."""
        if self._next_char() != "[":
            raise BadInput(str(self.path), "a .json input must hold an array of records (use .jsonl for one record "
                                           "per line)")
        self.at += 1

    def next_item(self) -> Any:
        """The array's next item, or _END after its closing bracket (only white space may follow)."""
        char = self._next_char()
        if char == "]":
            self.at += 1
            if self._next_char():
                raise self._refuse("extra data after the array")
            return _END
        if not self.first:
            if char != ",":
                raise self._refuse("Expecting ',' delimiter" if char else "the array is not closed")
            self.at += 1
            self._next_char()
        self.first = False
        while True:
            try:
                value, end = self.decoder.raw_decode(self.window, self.at)
            except json.JSONDecodeError as err:
                if self._more():  # the item may run past the window: decode it again with more text
                    continue
                raise self._refuse(json_problem(err), err.pos) from None
            except RecursionError:
                raise self._refuse(too_deep()) from None
            if end == len(self.window) and self._more():
                continue  # a number or literal cut at the window's end: decode it whole
            self.at = end
            return value
