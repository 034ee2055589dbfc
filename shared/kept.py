"""A process's bounded memo of values that never change once made (an issued invoice's document,
its lines of the import files): the latest `size` kept by key, the oldest dropped first."""
from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    def __init__(self, size: int):
        self._size = size
        self._values: dict[K, V] = {}  # insertion order: oldest first

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, value: V) -> V:
        self._values[key] = value
        while len(self._values) > self._size:
            self._values.pop(next(iter(self._values)))
        return value
