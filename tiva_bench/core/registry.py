"""A name -> entry registry with one did-you-mean, and lazy ``"module:attr"`` entries.

A lower layer defines a registry; a higher one registers into it. Entries given as a
``"package.module:attribute"`` string are imported on first ``get``, so listing names never
imports heavy modules (torch, a backbone) that a run does not use.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Generic, Iterable, Iterator, TypeVar

from tiva_bench.core.errors import UnknownNameError

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """``"; did you mean 'w_dis'?"`` for the closest known names, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def import_target(target: str):
    """``"package.module:attribute"`` -> the attribute (imports the module)."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


class Registry(Generic[T]):
    """Ordered mapping from a unique name to an entry (or a lazy ``"module:attr"`` target).

    ``kind`` is used in error messages ("unknown metric 'wdis'; did you mean 'w_dis'?").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._lazy: set[str] = set()

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"``, imported on the first ``get(name)``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target
        self._lazy.add(name)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)} (known: {', '.join(self._entries)})")
        if name in self._lazy:
            self._entries[name] = import_target(self._entries[name])
            self._lazy.discard(name)
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
