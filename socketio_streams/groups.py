"""A reader's consumer group: several ``XREAD``-like reads in flight.

A reader that sends its next ``XREAD`` once the last one has answered
costs Redis a wake-up per server per entry to read and parse it, and the
reader a write. With a consumer group of its own (``NOACK``: nothing is
pending, nothing to acknowledge), a reader keeps ``DEPTH`` reads
(``XREADGROUP ... >``) queued on its connection: Redis serves the next as
soon as an entry comes, with no command to read first, and the reader
writes more only when half of them have answered.

The group is only a cursor. The reader's ``last_id`` stays what it resumes
from: each time it connects, or its ``last_id`` moved otherwise (a stream
that restarted), the group is set to it (``XGROUP CREATE``, or ``SETID``);
reads in flight on a connection dropped are lost with it, and read again
from ``last_id``.

A group of ours left more than ``FORGET`` s behind the stream's last
entry (by their IDs' times: a live reader reads each entry as it comes)
belongs to a server gone: the next reader to set its own up destroys it.
Its reader, if it was alive after all (frozen, or that far behind), is
told ``NOGROUP`` and sets it up again where it was. A reader's own is
destroyed when its manager closes.

Not used (the reader sends ``XREAD``, as before) on a cluster client (no
one connection), from the start of a stream (``0-0``: one that did not
exist when the reader looked, or restarted) and while it does not exist,
or if Redis refuses the group commands (an ACL without them: said once).
Steps (see :mod:`.steps`).
"""
from __future__ import annotations

from functools import partial
from typing import Any

from . import raw
from .codec import as_text
from .errors import refusal, transient
from .steps import Steps

#: reads kept in flight, and the most entries one of them asks for (a
#: backlog reaches the reader ``DEPTH * COUNT_MAX`` entries at a time at
#: most, Redis' output buffer for it holding no more)
DEPTH = 16
COUNT_MAX = 128
#: the groups' names: this, then the server's uid
PREFIX = 'socketio-streams:'
CONSUMER = 'reader'
#: a group of ours this far behind the stream's last entry is destroyed (s)
FORGET = 60.0
#: at most this many groups are looked at per set-up (bad input: a
#: stream with thousands of groups)
SWEEP_MAX = 100
#: ``read`` gives this when the reader should send ``XREAD`` itself
NOT_USED: Any = object()


def refused(exc: Exception) -> bool:
    """An ACL without the command, or a Redis that does not know it."""
    return refusal(exc) is not None


def id_ms(entry_id: Any) -> int:
    """The time part of a stream ID (ms)."""
    return int(as_text(entry_id).split('-')[0])


class Group:
    """The consumer group of one server's reader of one stream."""

    def __init__(self, key: str, uid: str, log: Any):
        self.key, self.name, self._log = key, PREFIX + uid, log
        #: the client whose kept connection has reads in flight, how many,
        #: their ``COUNT``, and the ID they continue from
        self._client: Any = None
        self._flying = 0
        self._count = 0
        self._at: str | None = None
        self._read: tuple = ()
        #: Redis refused the group commands: XREAD from now on
        self.refused = False
        #: the group may exist in Redis (destroyed by ``forget``)
        self.made = False

    def read(self, client: Any, last_id: str, count: int,
             block: int) -> Steps[Any]:
        """The next ``XREADGROUP`` reply, from ``last_id`` on; None if the
        group was destroyed meanwhile (read again: it is set up anew);
        ``NOT_USED`` if the reader should send ``XREAD`` itself."""
        if self.refused or not raw.has_pool(client):
            return NOT_USED
        if last_id == '0-0':  # a stream that may not exist (yet): XREAD,
            if self._client is client and self._flying:  # on a connection
                yield from self._drop(client)  # with no reads of ours
            return NOT_USED
        count = min(count, COUNT_MAX)
        if client is not self._client or last_id != self._at or \
                count != self._count:
            if not (yield from self._set_up(client, last_id, count, block)):
                return NOT_USED
        reply = yield from raw.reply(client)
        self._flying -= 1
        if isinstance(reply, Exception):
            yield from self._drop(client)
            if refused(reply):
                self._refuse(reply)
                return NOT_USED
            if 'NOGROUP' in str(reply):  # its stream deleted, or swept
                return None
            raise reply
        entries = raw.entries(reply)
        if entries:
            self._at = as_text(entries[-1][0])
        if self._flying <= DEPTH // 2:
            yield from raw.send(client, [self._read] * (DEPTH - self._flying))
            self._flying = DEPTH
        return reply

    def _set_up(self, client: Any, last_id: str, count: int,
                block: int) -> Steps[bool]:
        """Point the group at ``last_id`` (made if need be) and send the
        reads; False if the reader should ``XREAD``."""
        if self._client is client and self._flying:
            yield from self._drop(client)
        self._client, self._flying = None, 0
        create, set_id = yield from raw.pipeline(client, [
            ('XGROUP', 'CREATE', self.key, self.name, last_id),
            ('XGROUP', 'SETID', self.key, self.name, last_id)])
        for reply in (create, set_id):
            if isinstance(reply, Exception) and refused(reply):
                self._refuse(reply)
                return False
        if isinstance(set_id, Exception):
            if transient(set_id):
                raise set_id
            return False  # no stream (yet), or not a stream: XREAD says
        self.made = True
        yield from self._sweep(client)
        self._read = ('XREADGROUP', 'GROUP', self.name, CONSUMER, 'COUNT',
                      count, 'BLOCK', block, 'NOACK', 'STREAMS', self.key,
                      '>')
        yield from raw.send(client, [self._read] * DEPTH)
        self._client, self._flying = client, DEPTH
        self._at, self._count = last_id, count
        return True

    @property
    def reading(self) -> bool:
        """Whether reads are in flight (the kept connection is taken)."""
        return self._flying > 0

    def _drop(self, client: Any) -> Steps[None]:
        """Drop the connection with reads in flight (their replies go)."""
        self._client, self._flying = None, 0
        yield from raw.drop(client)

    def _refuse(self, exc: Exception) -> None:
        self.refused = True
        self._log.info(
            'reader of %r: Redis refused a consumer group (%s: %s); it reads '
            'with XREAD (README.rst, "Security considerations", gives the '
            'ACL rule that allows it)', self.key, type(exc).__name__, exc)

    def _sweep(self, client: Any) -> Steps[None]:
        """Destroy the groups of servers gone (see ``FORGET``); best
        effort, through the client's pool."""
        try:
            info = yield partial(client.xinfo_stream, self.key)
            last = id_ms(info['last-generated-id'])
            groups = yield partial(client.xinfo_groups, self.key)
            for group in groups[:SWEEP_MAX]:
                name = as_text(group['name'])
                if name.startswith(PREFIX) and name != self.name and \
                        last - id_ms(group['last-delivered-id']) > \
                        FORGET * 1000:
                    yield partial(client.xgroup_destroy, self.key, name)
        except Exception as exc:  # no stream, an ACL without XINFO...
            self._log.debug('reader of %r: groups not swept: %s', self.key,
                            exc)

    def forget(self, client: Any) -> Steps[None]:
        """Destroy the group (its reader has stopped), by ``client``; best
        effort: else the next reader's sweep does."""
        if not self.made:
            return
        self.made = False
        try:
            yield partial(client.xgroup_destroy, self.key, self.name)
        except Exception as exc:
            self._log.debug('reader of %r: group not destroyed: %s',
                            self.key, exc)
