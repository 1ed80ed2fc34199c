"""Grouping images that must stay together (same patient, near-duplicates): disjoint sets (union-find)."""

from __future__ import annotations


class DisjointSets:
    """Union-find over ``0..n-1`` with path halving; ``roots()`` gives each element's group id."""

    def __init__(self, n: int) -> None:
        self._parent = list(range(n))

    def find(self, i: int) -> int:
        """The root of ``i``'s set."""
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        """Join ``i``'s set to ``j``'s (the root of ``j``'s set becomes the root of both)."""
        self._parent[self.find(i)] = self.find(j)

    def roots(self) -> list[int]:
        """The group id (root) of every element, in order."""
        return [self.find(i) for i in range(len(self._parent))]
