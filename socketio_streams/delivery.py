"""Local delivery, as decisions: which local sockets an EVENT goes to,
encoded once, and which of them must not get it now (a socket being
restored, one restored, one that joined after it). No I/O: the caller
sends what :meth:`Delivery.plan` returns."""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
from typing import Any, Callable

import engineio.json
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from . import protocol
from .protocol import ProtocolError
from .sockets import LocalSocket, LocalSockets


def targets(mgr: Any, namespace: str, rooms: list,
            except_rooms: list) -> list[tuple[str, str]]:
    """``(sid, eio_sid)`` of the manager's sockets in any of ``rooms`` (all
    if empty) and in none of ``except_rooms``."""
    if mgr.server is None or namespace not in mgr.rooms:
        return []
    if not except_rooms:  # each sid once already
        return list(mgr.get_participants(namespace, rooms or None))
    found = dict(mgr.get_participants(namespace, rooms or None))
    for room in except_rooms:
        for sid, _ in mgr.get_participants(namespace, room):
            found.pop(sid, None)
    return list(found.items())


def encode(packet_class: Any, namespace: str, event_data: list,
           plain: bool = False, text: str | None = None) -> list:
    """An EVENT as Engine.IO packets (more than one with binary).
    ``plain``: the data holds no bytes (decoded from JSON), so python-
    socketio's packets need not look for any; ``text``: its JSON as Node
    writes it (:func:`.plain.event_json`), if made already (so plain)."""
    encoded: Any
    plain = plain or text is not None
    try:
        if plain and packet_class is sio_packet.Packet and \
                packet_class.json is engineio.json:
            # what Packet(...).encode() makes, without its bytes walk (an
            # ASCII text is the same with python-socketio's ensure_ascii)
            if text is None or not text.isascii():
                text = _event_json(event_data)
            encoded = ('2' if namespace == '/' else f'2{namespace},') + text
        elif plain and _told_binary(packet_class):
            encoded = packet_class(sio_packet.EVENT, namespace=namespace,
                                   data=event_data, binary=False).encode()
        else:
            encoded = packet_class(sio_packet.EVENT, namespace=namespace,
                                   data=event_data).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        # decodable from Redis, yet not for clients (a map with binary
        # keys, nesting too deep to encode again)
        raise ProtocolError(f'event cannot be sent to clients: '
                            f'{type(exc).__name__}: {exc}') from None
    if not isinstance(encoded, list):
        encoded = [encoded]
    return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]


#: python-socketio's ``json.dumps(data, separators=(',', ':'))``, made once
_event_json = json.JSONEncoder(separators=(',', ':')).encode


@functools.lru_cache(maxsize=None)
def _told_binary(packet_class: Any) -> bool:
    """Whether the packet class takes python-socketio's ``binary``."""
    try:
        return 'binary' in inspect.signature(packet_class).parameters
    except (TypeError, ValueError):
        return False


class Delivery:
    """Chooses the targets of broadcasts among ``mgr``'s sockets.

    With recovery on, the position of each namespace's stream whose
    targets were chosen is kept (``decided``): a socket registered under
    ``deciding`` gets what comes after it, none of what came before.
    ``lock`` makes the locks (a no-op context manager where one task runs
    at a time)."""

    def __init__(self, mgr: Any, sockets: LocalSockets,
                 lock: Callable[[], Any] = contextlib.nullcontext):
        self._mgr = mgr
        self._sockets = sockets
        self.decided: dict[str, tuple[int, int]] = {}
        self.renew(lock)

    def renew(self, lock: Callable[[], Any]) -> None:
        """New locks (in a child process after ``fork()``)."""
        #: held while targets are chosen and while a socket registers
        self.deciding = lock()
        #: held while a socket's restoring state changes
        self.restoring = lock()

    def plan(self, namespace: str, event_data: list, rooms: list,
             except_rooms: list, offset: str | None = None,
             recovery: bool = False, plain: bool = False,
             text: str | None = None) -> list[tuple[str, list]]:
        """``(eio_sid, eio_pkts)`` to send (``plain``, ``text``: see
        ``encode``).
        With recovery on, ``offset``
        (the stream entry ID) is appended as the last argument, as Node
        does; a socket being restored gets it after its missed packets
        (held here), one restored gets nothing twice, one that joined
        after the entry reached the stream gets nothing."""
        at = None
        if offset is not None and recovery:
            at = protocol.offset_key(offset)
            with self.deciding:
                if at > self.decided.get(namespace, protocol.BEFORE):
                    self.decided[namespace] = at
                found = targets(self._mgr, namespace, rooms, except_rooms)
            event_data = [*event_data, offset]
            if text is not None:  # an entry ID: digits and '-'
                text = f'{text[:-1]},"{offset}"]'
        else:
            found = targets(self._mgr, namespace, rooms, except_rooms)
        if not found:
            return []
        eio_pkts = encode(self._mgr.server.packet_class, namespace,
                          event_data, plain, text)
        if not recovery:  # no socket is being restored
            return [(eio_sid, eio_pkts) for _, eio_sid in found]
        sends = []
        for sid, eio_sid in found:
            sock = self._sockets.get(namespace, sid)
            if sock is not None:
                if at is not None and sock.start is not None and \
                        at <= sock.start:
                    continue
                if self._held(sock, offset, eio_pkts):
                    continue
            sends.append((eio_sid, eio_pkts))
        return sends

    def _held(self, sock: LocalSocket, offset: str | None,
              eio_pkts: list) -> bool:
        """True if a recovering socket must not get this packet now."""
        if sock.restoring is None and sock.replayed is None:
            return False
        with self.restoring:
            if sock.restoring is not None:
                sock.held.append((offset, eio_pkts))
                return True
            until = sock.replayed
        return offset is not None and until is not None and \
            protocol.compare_offsets(offset, until) <= 0

    def position(self, namespace: str,
                 read: str | None) -> tuple[int, int] | None:
        """The last entry of the namespace's stream whose targets were
        chosen, or that is on its way to them: ``read``, the reader's last
        entry (set before it handles it), or the last local emit
        delivered."""
        known = [protocol.offset_key(read)] if read else []
        if namespace in self.decided:
            known.append(self.decided[namespace])
        return max(known) if known else None

    def release(self, sock: LocalSocket, last: str) -> list:
        """End a socket's restoring at ``last``: the packets held for it
        that come after (the others were in its backlog)."""
        with self.restoring:
            held = sock.held if sock.restoring is not None else []
            sock.restoring, sock.held, sock.replayed = None, [], last
        return [pkts for offset, pkts in held if offset is None or
                protocol.compare_offsets(offset, last) > 0]
