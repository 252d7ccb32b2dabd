"""Connection state recovery, the manager's side: a socket registered
where its namespace's stream stood, a session restored under its old sid
with what it missed replayed before live packets, a dropped socket's
session kept. Which backlog entries a restored socket gets is decided by
:func:`missed` (no I/O); ``recovery.Recovery`` talks to Redis."""
from __future__ import annotations

from functools import partial
from typing import Any

from bidict import ValueDuplicationError
from socketio.base_manager import BaseManager

from . import protocol
from .dedup import Dedup
from .delivery import encode
from .protocol import MessageType as T, ProtocolError
from .publisher import Item
from .steps import Steps

#: disconnection reasons after which a session is kept for recovery
RECOVERABLE = ('transport close', 'transport error', 'ping timeout')


def missed(fields: Any, namespace: str, rooms: list,
           seen: Dedup) -> list | None:
    """``[event, *args]`` of a backlog entry a socket in ``rooms`` should
    get again, else None (other namespace, room, volatile, a request, a
    duplicate); ProtocolError if the entry is bad."""
    message = protocol.decode_entry(fields)
    if message.nsp != namespace or message.type != T.BROADCAST or \
            protocol.request_id(message.data) is not None:
        return None
    if seen.is_copy('', message.uid, message.seq,
                    protocol.raw_field(fields, 'data')):
        return None
    event_data = protocol.parse_event(message.data)
    opts = protocol.parse_opts(message.data)
    if 'volatile' in opts[2] or not protocol.should_include(rooms, opts):
        return None
    return event_data


class Restoring:
    """The recovery steps of both managers (a mixin of ``ManagerCore``).
    """

    # what the manager provides
    _recovery: Any
    sockets: Any
    _delivery: Any
    _links: Any
    _inbound: Any
    _runtime: Any
    _stats: Any
    _log: Any
    _stream: Any
    _session: Any
    _send_eio: Any
    _close_connection: Any
    server: Any
    pending_connect: dict
    basic_enter_room: Any
    eio_sid_from_sid: Any
    is_sid_room: Any
    get_rooms: Any

    def _register(self, eio_sid: str, namespace: str) -> str | None:
        """A new socket. With recovery on, note where the namespace's
        stream stood when it joined: every broadcast after that reaches
        it (or is replayed to it), none before; under the lock in which
        deliveries choose their targets, so none is on both sides."""
        if self._recovery is None:
            return BaseManager.pre_connect(self, eio_sid, namespace)
        with self._delivery.deciding:
            sid = BaseManager.pre_connect(self, eio_sid, namespace)
            reader = self._links.readers.get(self._stream(namespace))
            start = self._delivery.position(
                namespace, reader.last_id if reader is not None else None)
            if sid is not None and start is not None:
                self.sockets.add(namespace, sid).start = start
        return sid

    def _take_session(self, pid: Any, offset: Any,
                      namespace: str) -> Steps[dict | None]:
        if self._recovery is None:
            return None
        try:
            return (yield from self._recovery.take(
                pid, offset, self._stream(namespace)))
        except Exception as exc:  # Redis unreachable: a fresh session
            self._log.warning('cannot restore session %r: %r', pid, exc)
            return None

    def _pre_restore(self, eio_sid: str, namespace: str,
                     session: dict) -> Steps[str | None]:
        """Register the socket under its old sid and rooms; live packets
        for it wait in a buffer until the missed ones are replayed."""
        sid = session['sid']
        if self.eio_sid_from_sid(sid, namespace) is not None:
            return None  # the old connection is still here: start afresh
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:
            return None
        sock = self.sockets.add(namespace, sid)
        with self._delivery.restoring:
            sock.restoring = session
        for room in [sid, *session['rooms']]:
            if room == sid or not self.is_sid_room(namespace, room):
                self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, []).append(sid)
        if isinstance(session.get('data'), dict):
            eio_session = yield partial(self.server.eio.get_session, eio_sid)
            eio_session[namespace] = session['data']
        sock.pid = session['pid']
        return sid

    def _replay(self, sid: str, namespace: str) -> Steps[None]:
        """Send what the client missed, then what arrived meanwhile."""
        sock = self.sockets.get(namespace, sid)
        session = sock.restoring
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        last, complete, sent = session['offset'], False, 0
        seen = Dedup()
        try:
            backlog = self._recovery.backlog(self._stream(namespace), last)
            while (entry := (yield from backlog.next())) is not None:
                entry_id, fields = entry
                last = entry_id
                try:
                    event_data = missed(fields, namespace, session['rooms'],
                                        seen)
                except ProtocolError as exc:
                    self._inbound.skip('an entry of a recovery backlog', exc)
                    continue
                if event_data is None:
                    continue
                try:
                    yield from self._send_eio(eio_sid, encode(
                        self.server.packet_class, namespace,
                        [*event_data, entry_id]))
                    sent += 1
                except ProtocolError as exc:
                    self._inbound.skip(f'backlog entry {entry_id}', exc)
            complete = True
        except Exception as exc:  # Hole, Redis, or a bug: never stranded
            self._log.warning('recovery of %s (%s) incomplete: %s; closing '
                              'its connection so it starts afresh', sid,
                              namespace, exc)
        # nothing held if the socket disconnected during the replay
        for eio_pkts in self._delivery.release(sock, last):
            yield from self._send_eio(eio_sid, eio_pkts)
        self._stats.incr('delivered', sent)
        if not complete:
            self._close_connection(eio_sid)

    def _persist(self, sid: str, namespace: str) -> Steps[None]:
        """Keep a dropped client's session for ``max_disconnection_duration``
        (queued like an emit: an outage does not lose it)."""
        sock = self.sockets.get(namespace, sid)
        if sock is None or sock.pid is None or self._recovery is None:
            return
        offset = sock.replayed or (
            '%d-%d' % sock.start if sock.start else None)
        try:
            value = protocol.encode_session(
                sid, sock.pid, self.get_rooms(sid, namespace),
                (yield from self._session(sid, namespace)), offset)
        except TypeError as exc:
            self._log.warning('session of %s cannot be stored for recovery: '
                              '%s', sid, exc)
            return
        yield from self._links.start_publisher().put(Item(
            'set', self._recovery.key(sock.pid),
            (value, self._recovery.ttl_ms)))
