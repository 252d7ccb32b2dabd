"""What the publisher queues: one :class:`Item` per command, and what it
remembers of a written entry (:class:`Written`). No I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


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
