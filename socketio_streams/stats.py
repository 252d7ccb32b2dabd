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


class Throttle:
    """At most ``burst`` log lines per ``per`` seconds for one kind of
    event (a flood of bad input must not flood the log); ``allow()`` also
    says how many were held back since the last line that was allowed."""

    def __init__(self, burst: int = 10, per: float = 10.0):
        self._burst = burst
        self._per = per
        self._start = 0.0
        self._count = 0
        self.held = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """(log this one?, lines held back before it)."""
        if now - self._start >= self._per:
            self._start, self._count = now, 0
        self._count += 1
        if self._count > self._burst:
            self.held += 1
            return False, 0
        held, self.held = self.held, 0
        return True, held
