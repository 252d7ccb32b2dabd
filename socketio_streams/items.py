"""What the publisher queues: one :class:`Item` per command, what it
remembers of the entries it wrote lately (:class:`Recent`), and which of
those a server lost (:meth:`Recent.lost` and :func:`missing`, steps: the
only I/O here)."""
from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from . import protocol
from .steps import Steps

#: how long before the last write entries are kept, to be written again if
#: the server turns out to have lost them (replication lag is far less)
RECENT_SECONDS = 5.0
#: at most this many of them (the oldest go first)
RECENT_MAX = 20_000


@dataclass
class Item:
    """One command: ``xadd`` (target = stream), ``publish``/``spublish``
    (target = channel) or ``set`` (target = key, payload = (value, ttl in
    ms)). ``on_written`` gets the reply (for ``xadd``, the entry ID).
    ``resent``: a copy of an entry the server lost."""
    kind: str
    target: str
    payload: Any
    on_written: Callable[[Any], None] | None = None
    resent: bool = False

    @property
    def key(self) -> str | None:
        """What decides the cluster node (PUBLISH: any node)."""
        return None if self.kind == 'publish' else self.target

    def command(self, max_len: int) -> tuple:
        """The command's arguments (an entry's as redis-py's ``xadd()``
        writes them, trimmed to about ``max_len``)."""
        if self.kind == 'xadd':
            return ('XADD', self.target, 'MAXLEN', '~', max_len, '*',
                    *itertools.chain.from_iterable(self.payload.items()))
        if self.kind == 'set':
            value, ttl_ms = self.payload
            return ('SET', self.target, value, 'PX', ttl_ms)
        return (self.kind.upper(), self.target, self.payload)  # (S)PUBLISH


@dataclass
class Written:
    """An entry the server acknowledged, with its ID."""
    at: float
    item: Item
    entry_id: str


class Recent:
    """The entries written in the last ``RECENT_SECONDS`` (at most
    ``RECENT_MAX``), oldest first. Only writes forget: through an outage,
    however long, what was written just before it is kept for the
    check.

    Kept in four deques, not as a record per entry: a record would be an
    object the garbage collector tracks (an entry's fields, text only, are
    not), thousands of them alive at a steady rate, walked again by every
    collection (measured at 2,000 emits/s in one process, per 5 s: 46
    collections with records, 19 without; 4 and 2 of the older
    generation, about 1.3 ms each, inside an ``emit``)."""

    def __init__(self) -> None:
        # (at, stream, fields, entry ID as the reply gave it), by age
        self._columns: tuple[deque, ...] = (deque(), deque(), deque(),
                                            deque())

    def __len__(self) -> int:
        return len(self._columns[0])

    def __iter__(self) -> Iterator[Written]:
        return (Written(at, Item('xadd', stream, fields),
                        protocol.as_text(entry_id))
                for at, stream, fields, entry_id in zip(*self._columns))

    def add(self, item: Item, entry_id: Any) -> None:
        """Keep an entry the server acknowledged with ``entry_id``."""
        now = time.monotonic()
        at, streams, fields, ids = self._columns
        at.append(now)
        streams.append(item.target)
        fields.append(item.payload)
        ids.append(entry_id)
        oldest = now - RECENT_SECONDS
        while at and (at[0] < oldest or len(at) > RECENT_MAX):
            at.popleft()
            streams.popleft()
            fields.popleft()
            ids.popleft()

    def _keep(self, *entry: Any) -> None:
        for column, value in zip(self._columns, entry):
            column.append(value)

    def lost(self, writer: Any, size: int) -> Steps[list[Written]]:
        """Take out and give (in the order written) those the server no
        longer has, asked ``size`` at a time on ``writer``'s clients.
        Replication keeps order, so if the newest entry of a stream is
        there, so are the older ones: one round trip per stream, mostly."""
        written = list(self)
        by_stream: dict[str, list[Written]] = {}
        for entry in written:
            by_stream.setdefault(entry.item.target, []).append(entry)
        lost: list[Written] = []
        yield from writer.ready()
        for stream, entries in by_stream.items():
            lost += yield from missing(writer.client(writer.node(stream)),
                                       stream, entries, size)
        gone = {id(w) for w in lost}
        for column in self._columns:
            column.clear()
        for entry in written:
            if id(entry) not in gone:
                self._keep(entry.at, entry.item.target, entry.item.payload,
                           entry.entry_id)
        return sorted(lost, key=lambda w: w.at)


def sendable(item: Item) -> bool:
    """Whether a client library can encode every argument of ``item``."""
    args: list = [item.target]
    if item.kind == 'xadd':
        args += [*item.payload, *item.payload.values()]
    elif item.kind == 'set':
        args.append(item.payload[0])
    else:
        args.append(item.payload)
    for arg in args:
        if isinstance(arg, bool) or not isinstance(
                arg, (str, bytes, bytearray, memoryview, int, float)):
            return False
        if isinstance(arg, str):
            try:
                arg.encode('utf-8')
            except UnicodeError:
                return False
    return True


def missing(client: Any, stream: str, entries: list[Written],
            size: int) -> Steps[list]:
    """Those of ``entries`` (ours, in ``stream``, oldest first) that the
    server lost (not merely trimmed); asked ``size`` at a time."""
    pipe = client.pipeline(transaction=False)
    pipe.xrange(stream, count=1)
    newest = entries[-1].entry_id
    pipe.xrange(stream, newest, newest)
    first, last = yield pipe.execute
    if last:
        return []
    found: list = []
    for start in range(0, len(entries), size):  # up to RECENT_MAX
        pipe = client.pipeline(transaction=False)
        for written in entries[start:start + size]:
            pipe.xrange(stream, written.entry_id, written.entry_id)
        found += yield pipe.execute
    first_id = protocol.as_text(first[0][0]) if first else None
    return [w for w, there in zip(entries, found) if not there and (
        first_id is None or
        protocol.compare_offsets(w.entry_id, first_id) > 0)]
