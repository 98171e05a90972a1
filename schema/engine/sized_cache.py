"""A least-recently-used cache bounded by count and by its entries' sizes added up."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SizedCache(Generic[K, V]):
    """Least recently used first out, bounded by its number of entries and by their sizes
    added up (for parsed documents: the characters of their texts)."""

    def __init__(self, max_entries: int, max_size: int) -> None:
        self.max_entries = max_entries
        self.max_size = max_size
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        entries = self._entries
        previous = entries.pop(key, None)
        if previous is not None:
            self._size -= previous[1]
        entries[key] = (value, size)
        self._size += size
        while len(entries) > self.max_entries or (self._size > self.max_size and len(entries) > 1):
            self._size -= entries.popitem(last=False)[1][1]

    def keys(self) -> list[K]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
