"""What the publisher queues: one :class:`Item` per command, what it
remembers of a written entry (:class:`Written`), and which of those a
server lost (:func:`missing`, steps: the only I/O here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import protocol
from .steps import Steps


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


@dataclass
class Written:
    """An entry the server acknowledged, with its ID."""
    at: float
    item: Item
    entry_id: str


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
