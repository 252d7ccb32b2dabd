"""Backpressure from the readers of the streams a publisher writes to.

A publisher much faster than the reader of a stream it writes to would
let ``MAXLEN ~ max_len`` trim entries that reader has not read yet (and
those of any reader elsewhere as slow). So the publisher counts the
entries it wrote to each stream and, before each batch, asks how many of
them this server's reader of that stream has not read back; while more
than ``max_len // 4``, it waits for the reader, up to ``WAIT`` seconds a
batch: a reader stuck in a handler slows the publisher down, it does not
stop it. A batch is itself at most ``max_len // 4`` entries, so what is
written and not read stays well under ``max_len``. Readers elsewhere are
waited for by the positions they report in Redis (:mod:`.positions`):
the slowest reader, here or there, counts. A stream with no reader that
is reading (none here, stopped or reconnecting; none reported elsewhere,
or too long ago) is not waited for meanwhile; a reader that reports
later is counted from where it is, so the entries written before it
reported are waited for too.
Steps (see :mod:`.steps`).
"""
from __future__ import annotations

import time
from collections import deque
from functools import partial
from typing import Any, Callable

from . import positions, protocol
from .positions import Remote
from .steps import Steps

#: how long one batch waits for a reader at most
WAIT = 1.0
#: how often the reader's position is looked at meanwhile
PAUSE = 0.002


def limit(max_len: int) -> int:
    """The most of ours a reader may have to read before a batch waits."""
    return max(max_len // 4, 1)


class Unread:
    """Our entries in each stream that its slowest reader has not read.

    ``position(stream)`` is the ID of the last entry the reader here read,
    or None if no reader here is reading it; ``remote``, if any, gives
    those of the readers elsewhere."""

    def __init__(self, position: Callable[[str], str | None],
                 remote: Remote | None = None):
        self._position = position
        self._remote = remote
        self._written: dict[str, int] = {}
        self._read: dict[str, int] = {}
        #: per stream, the last ID written since the last look, and the
        #: (ID, entries written up to it) looked at since, oldest first
        self._last: dict[str, Any] = {}
        self._marks: dict[str, deque[tuple[tuple[int, int], int]]] = {}

    def connect(self) -> Steps[None]:
        """Connect the client that reads the positions elsewhere, if any,
        before its first look (best effort)."""
        if self._remote is not None:
            yield from self._remote.connect()

    def wrote(self, stream: str, entry_id: Any) -> None:
        """One more entry of ours in ``stream`` (its ID as Redis gave)."""
        self._written[stream] = self._written.get(stream, 0) + 1
        self._last[stream] = entry_id

    def count(self, stream: str, max_len: int) -> int:
        """How many of our entries in ``stream`` its slowest reader has not
        read (0 while there is none to wait for). A reader that reports
        only later (its first read, or back from ``STALE``) is counted
        from where it is, the entries written before it reported
        included: so the marks are kept meanwhile, one per
        ``positions.every(max_len)`` entries (the last ID written waits
        for the next); none further back than ``max_len`` entries
        (trimmed: no reader can still read them)."""
        written = self._written.get(stream, 0)
        marks = self._marks.setdefault(stream, deque())
        last = self._last.get(stream)
        at = self._slowest(stream)
        if last is not None and (at is not None or not marks or written -
                                 marks[-1][1] >= positions.every(max_len)):
            del self._last[stream]
            marks.append((protocol.offset_key(protocol.as_text(last)),
                          written))
        while marks and (marks[0][1] <= written - max_len or
                         at is not None and marks[0][0] <= at):
            self._read[stream] = marks.popleft()[1]
        if at is None:  # nobody to wait for (yet)
            return 0
        return written - self._read.get(stream, 0)

    def _slowest(self, stream: str) -> tuple[int, int] | None:
        """Where the slowest reader of ``stream`` is (a reader that starts
        behind it, or goes back, is counted from there on)."""
        here = self._position(stream)
        there = self._remote and self._remote.position(stream)
        found = [protocol.offset_key(p) for p in (here, there) if p]
        return min(found) if found else None

    def clear(self, item: Any, max_len: int) -> bool:
        """Whether ``item`` may be sent with no step before: ``wait``
        would neither wait for a reader nor look at the positions first
        (a look that is due while few are unread comes after the send:
        ``look_after``)."""
        if item.kind != 'xadd':
            return True
        unread, most = self.count(item.target, max_len), limit(max_len)
        if unread > most // 2 and self._remote is not None and \
                self._remote.due(item.target,
                                 self._written.get(item.target, 0)):
            return False
        return unread <= most

    def looks_due(self) -> bool:
        """Whether a look at the positions elsewhere is due
        (``look_after``)."""
        return self._remote is not None and any(
            self._remote.due(stream, written)
            for stream, written in list(self._written.items()))

    def look_after(self) -> Steps[None]:
        """The looks at the positions elsewhere that are due, made once
        the batch went (or the item written ahead), not before it: while
        few of ours are unread, a look (two round trips) holds no packet
        back. The positions looked at meanwhile are older, so what is
        unread is counted more, not less; a reader that reports for the
        first time is counted from where it is at the next batch."""
        if self._remote is None:
            return
        for stream, written in list(self._written.items()):
            yield from self._remote.look(stream, written, False)

    def wait(self, batch: list, max_len: int, runtime: Any) -> Steps[None]:
        """Before ``batch`` is sent: wait while a reader of a stream it
        writes to has more than ``max_len // 4`` of ours to read (up to
        ``WAIT`` s in all). The positions elsewhere are looked at first
        only if more than half that many are unread (else after the send:
        ``look_after``), and while waiting."""
        most = limit(max_len)
        deadline = None
        for stream in {item.target for item in batch if item.kind == 'xadd'}:
            waiting = False
            while True:
                if self._remote is not None and (
                        waiting or self.count(stream, max_len) > most // 2):
                    yield from self._remote.look(
                        stream, self._written.get(stream, 0), waiting)
                if self.count(stream, max_len) <= most:
                    break
                waiting = True
                now = time.monotonic()
                deadline = deadline or now + WAIT
                if now >= deadline:
                    return
                yield partial(runtime.sleep, PAUSE)
