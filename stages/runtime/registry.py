"""Named backends whose code is imported only when a run picks one: one registry shape for every stage."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar


class Spec(Protocol):
    """What a registry entry must have: where its factory lives, as `module:attribute`."""

    factory: str


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """Backend name -> spec; `create` imports the spec's factory module and calls the factory."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._specs: dict[str, S] = {}

    def register(self, name: str, spec: S) -> None:
        """Make NAME available; nothing is imported until a run picks it."""
        self._specs[name] = spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __getitem__(self, name: str) -> S:
        return self._specs[name]

    def check(self, name: str) -> str:
        """`name` if registered, else ValueError listing the choices (a pydantic validator's message)."""
        if name not in self._specs:
            article = "an" if self.what[:1] in "aeiou" else "a"
            raise ValueError(f"'{name}' is not {article} {self.what}; choose one of {', '.join(self._specs)}")
        return name

    def create(self, name: str, *args: Any) -> Any:
        """Import the factory of NAME and call it with `args`."""
        module, _, attribute = self._specs[name].factory.partition(":")
        return getattr(importlib.import_module(module), attribute)(*args)
