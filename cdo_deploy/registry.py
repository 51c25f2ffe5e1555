"""One small generic registry used by every extension point.

Backbones, curriculum schedules, difficulty knobs, runtime backends, sources
and sinks each own one ``Registry``. Registering a name twice is an error and
an unknown name fails with close-match suggestions.

Example:
    >>> reg = Registry("colour")
    >>> @reg.register("red")
    ... def red():
    ...     return "#f00"
    >>> reg.get("red")()
    '#f00'
    >>> reg.list("r*")
    ['red']
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

from .errors import CdoError, did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with a register decorator and helpful lookups."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; duplicates raise ``ValueError``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise ``CdoError`` with suggestions."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise CdoError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; known: {known}") from None

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style wildcard."""
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
