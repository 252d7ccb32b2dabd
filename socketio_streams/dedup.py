"""Copies of stream entries a publisher wrote twice; no I/O.

A publisher writes an entry again when it cannot know whether the first
write landed (a batch whose reply was lost) or when the server lost it (a
failover). The copy has the same sender, ``seq`` and payload as the
original. A reader drops an entry only if that exact triple was seen
recently: a forged entry (any ``seq``, however large or small) is at most
an event of its own, never a reason to drop the real entries that follow
it, and the table is bounded.
"""
from __future__ import annotations

from collections import deque
from typing import Any

#: entries remembered (the oldest forgotten first): as many as a publisher
#: may write again after a failover (items.RECENT_MAX)
WINDOW = 20_000


class Dedup:
    """Remembers the last ``size`` entries that carried a ``seq``."""

    def __init__(self, size: int = WINDOW):
        self._size = size
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._order)

    def is_copy(self, stream: str, uid: Any, seq: Any, data: Any) -> bool:
        """True if this entry was seen before; else remember it. ``seq``
        None (a Node publisher's entry) is never a copy."""
        if seq is None:
            return False
        mark = hash((stream, uid, seq, data))
        if mark in self._seen:
            return True
        self._seen.add(mark)
        self._order.append(mark)
        if len(self._order) > self._size:
            self._seen.discard(self._order.popleft())
        return False
