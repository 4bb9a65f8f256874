"""One Registry class for everything that is chosen by name: models, compressors,
topologies, collectives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


def _first_paragraph(doc: str) -> str:
    """The first paragraph of a docstring on one line (never cut mid-sentence)."""
    return " ".join(doc.strip().split("\n\n")[0].split())


class Registry(Generic[T]):
    """A name -> object map that reports unknown names with the list of choices.

    >>> r = Registry("colour"); _ = r.register("red")(1); r.get("red")
    1
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            self._help[name] = help or _first_paragraph(getattr(obj, "__doc__", None) or "")
            return obj

        return deco

    def add(self, name: str, obj: T, help: str = "") -> T:
        return self.register(name, help)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def help(self, name: str) -> str:
        self.get(name)
        return self._help[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
