"""Counters shared by the publisher, readers and manager."""
from __future__ import annotations

import threading

COUNTERS = ('published', 'delivered', 'errors', 'skipped', 'duplicates',
            'reconnects', 'gaps', 'buffer_full', 'resent')


class Stats:
    """Thread-safe counters; ``snapshot()`` copies them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._counts)
