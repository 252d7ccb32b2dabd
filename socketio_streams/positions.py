"""Readers' positions in Redis: backpressure from every server's readers.

A publisher knows how far this server's own readers have read (see
:mod:`.pressure`); a reader elsewhere, slower (it delivers what this one
only skips), would fall behind a publisher held only by its own reader,
and lose entries to ``MAXLEN`` for good. So each reader writes, beside the
stream, ``HSET <stream>:readers <server uid> "<last ID read> <unix ms>"``
at its first read, then once per ``max_len // 16`` entries read, or half
a second after it read any, and where it stopped once a read comes back
empty (the CLI's ``streams`` shows them); and a publisher reads that hash
once per ``max_len // 16`` of its own entries (more often while it
waits), to wait for the slowest reader too.

A position reported more than ``STALE`` s ago is not waited for (its
server stopped, froze or lost Redis: it is slowed down for, not stopped
for); one older than ``FORGET`` s, or one that is not a position at all,
is deleted. Servers that do not report (Node's adapter, older versions)
are not waited for. Steps (see :mod:`.steps`).
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

from . import protocol, raw
from .errors import RESPONSE_ERRORS, transient
from .steps import Steps

#: a reader reports at least this often while it reads anything (s)
REPORT_INTERVAL = 0.5
#: a position reported longer ago than this is not waited for (s)
STALE = 3.0
#: a position reported longer ago than this is deleted (s)
FORGET = 60.0
#: how often a waiting publisher reads the positions again (s)
WAITING_REFRESH = 0.01
#: a hash with more fields than this is not read (bad input: it would
#: cost the publisher more than the backpressure is worth)
MAX_READERS = 1000


def key(stream: str) -> str:
    """The hash of the positions of ``stream``'s readers."""
    return f'{stream}:readers'


def every(max_len: int) -> int:
    """Entries read (or written) between two reports (or looks)."""
    return max(max_len // 16, 1)


def value(last_id: str, now: float | None = None) -> str:
    """What a reader writes: its last ID read and the time (unix ms)."""
    return f'{last_id} {int((time.time() if now is None else now) * 1000)}'


def parse(text: Any, now: float) -> tuple[str, float]:
    """A position as ``value`` wrote it: the last ID read, and how long
    ago (s; negative: ahead of ``now``); ValueError if it is not one."""
    last_id, ms = protocol.as_text(text).split(' ')
    protocol.offset_key(last_id)  # an entry ID, or ValueError
    return last_id, now - int(ms) / 1000


def slowest(reply: Any, own: str, now: float
            ) -> tuple[str | None, list[Any]]:
    """From an ``HGETALL`` reply: the position of the slowest reader
    elsewhere (not ``own``) to wait for, or None; and the fields to
    delete (forgotten or not positions at all)."""
    found: tuple[int, int] | None = None
    forget = []
    for field, text in (reply or {}).items():
        if protocol.as_text(field) == own:
            continue
        try:
            last_id, age = parse(text, now)
            at = protocol.offset_key(last_id)
        except (ValueError, UnicodeDecodeError):
            forget.append(field)
            continue
        if abs(age) > FORGET:
            forget.append(field)
        elif abs(age) <= STALE and (found is None or at < found):
            found = at
    return (None if found is None else f'{found[0]}-{found[1]}'), forget


class Reporter:
    """A reader's side: reports its position when due."""

    def __init__(self, stream: str, uid: str, max_len: int, log: Any):
        self._key, self._uid, self._log = key(stream), uid, log
        self._every = every(max_len)
        self._unreported = 0
        self._reported = -REPORT_INTERVAL  # the first read reports at once
        self._refused = False
        #: a position of ours may be in Redis
        self.reported = False

    def read(self, client: Any, count: int, last_id: str,
             kept: bool = True) -> Steps[None]:
        """``count`` more entries read, up to ``last_id``; 0: a read came
        back empty (the stream is quiet: what was read since the last
        report is reported now, not left behind until the next entry).
        Written on the connection kept for ``client`` (:mod:`.raw`) if
        ``kept``, else through its pool (reads in flight on that one)."""
        self._unreported += count
        if self._refused or not self._unreported or (
                count and self._unreported < self._every and
                time.monotonic() < self._reported + REPORT_INTERVAL):
            return
        self._unreported, self._reported = 0, time.monotonic()
        self.reported = True
        args = (self._key, self._uid, value(last_id))
        try:
            if kept and raw.has_pool(client):
                yield from raw.command(client, 'HSET', *args)
            else:
                yield partial(client.hset, *args)
        except RESPONSE_ERRORS as exc:  # an ACL without HSET, say
            if transient(exc):  # Redis loading, a failover: next time
                return
            self._refused = True
            self._log.warning(
                'reader: cannot write its position to %r (%s: %s); servers '
                'publishing fast will not wait for this one', self._key,
                type(exc).__name__, exc)

    def forget(self, client: Any) -> Steps[None]:
        """Delete our position (the reader has stopped): publishers do not
        wait for it meanwhile. Best effort: else it goes ``STALE``."""
        if not self.reported:
            return
        self.reported = False
        try:
            yield partial(client.hdel, self._key, self._uid)
        except Exception as exc:
            self._log.debug('reader: position in %r not deleted: %s',
                            self._key, exc)


class Remote:
    """A publisher's side: the slowest reader elsewhere, per stream."""

    def __init__(self, connector: Any, uid: str, max_len: int, log: Any):
        self._connector, self._uid, self._log = connector, uid, log
        self._every = every(max_len)
        #: per stream: the slowest position, and (entries written, when)
        #: as of the last look
        self._slowest: dict[str, str | None] = {}
        self._looked: dict[str, tuple[int, float]] = {}
        self._refused = False
        #: the streams whose hash is too large to read (said once)
        self._crowded: set[str] = set()

    def position(self, stream: str) -> str | None:
        """The slowest reader of ``stream`` elsewhere, as last looked."""
        return self._slowest.get(stream)

    def due(self, stream: str, written: int, waiting: bool = False) -> bool:
        """Whether ``look`` would read the positions of ``stream`` (or,
        the first time, note where it starts)."""
        if self._refused:
            return False
        last = self._looked.get(stream)
        return last is None or written - last[0] >= self._every or \
            time.monotonic() >= last[1] + (WAITING_REFRESH if waiting
                                           else STALE)

    def connect(self) -> Steps[None]:
        """Open the connection ``look`` will use (best effort)."""
        try:
            yield partial(self._connector.client().ping)
        except Exception as exc:
            self._log.debug('publisher: positions client not connected: '
                            '%s', exc)

    def look(self, stream: str, written: int, waiting: bool) -> Steps[None]:
        """Read the positions again if due (``every`` of our entries
        since the last look, or ``STALE`` s; the first time, after that
        many of the publisher's first entries): ``written`` of our entries in
        ``stream`` so far; ``waiting`` for a reader (looks more often)."""
        now = time.monotonic()
        if not self._refused and stream not in self._looked:
            # the first batch goes at once (no client made for it)
            self._looked[stream] = (written, now)
        if not self.due(stream, written, waiting):
            return
        self._looked[stream] = (written, now)
        name = key(stream)
        try:
            client = self._connector.client()
            size = yield partial(client.hlen, name)
            if size > MAX_READERS:  # not servers: forged, or a stray key
                self._slowest[stream] = None
                if stream not in self._crowded:
                    self._crowded.add(stream)
                    self._log.warning(
                        'publisher: %r has %d fields, more than %d '
                        'readers\' positions: not read (delete it); it '
                        'waits for this server\'s readers only', name, size,
                        MAX_READERS)
                return
            self._crowded.discard(stream)
            reply = yield partial(client.hgetall, name)
            self._slowest[stream], forget = slowest(reply, self._uid,
                                                    time.time())
            if forget:
                yield partial(client.hdel, name, *forget)
        except RESPONSE_ERRORS as exc:
            self._slowest[stream] = None
            if transient(exc):
                return
            self._refused = True
            self._log.warning(
                'publisher: cannot read the readers\' positions in %r (%s: '
                '%s); it waits for this server\'s readers only', name,
                type(exc).__name__, exc)
        except Exception as exc:  # Redis away: the batch's send says so
            self._slowest[stream] = None
            self._log.debug('publisher: positions in %r not read: %s',
                            name, exc)
