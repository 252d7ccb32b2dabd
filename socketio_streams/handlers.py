"""What each inbound message does: a stream entry or a PUB/SUB message is
decoded, de-duplicated, and handed to its type's handler. The handlers
decide; what they do goes through a :class:`Context` (the manager, as
:class:`Local` shows it), and are steps (see :mod:`.steps`): both managers
run them, each in its world.
"""
from __future__ import annotations

import functools
import time
from functools import partial
from typing import Any, Callable, Protocol

from . import plain, protocol
from .dedup import Dedup
from .protocol import Message, MessageType as T, ProtocolError
from .stats import Throttle
from .steps import Steps

#: how long the answer to an ``emit(..., callback=)`` aimed at another
#: server is awaited (python-socketio's own ``call`` gives up after 60 s)
CALLBACK_TTL = 120.0


class Context(Protocol):
    """What the handlers may do through their manager (``Steps``: steps):
    :class:`Local` for the managers, a fake in unit tests."""
    uid: str
    requests: Any  # cluster.Requests: the requests awaiting answers
    stats: Any
    log: Any

    def targets(self, namespace: str, rooms: list,
                except_rooms: list) -> list[tuple[str, str]]: ...

    def has_sockets(self, namespace: str | None,
                    rooms: list | None = None) -> bool: ...

    def deliver(self, namespace: str, event_data: list, rooms: list,
                except_rooms: list, offset: str | None = None,
                plain: bool = False,
                text: str | None = None) -> Steps[None] | None: ...

    def respond(self, request: Message, type_: int,
                data: dict) -> Steps[None]: ...

    def send_with_acks(self, namespace: str, event_data: list,
                       targets: list, ack: Callable,
                       expires: float | None = None) -> Steps[None]: ...

    def local_sockets(self, namespace: str,
                      opts: dict) -> Steps[list[dict]]: ...

    def event_handler(self, namespace: str,
                      event: str) -> Callable | None: ...

    def apply_room(self, sid: str, namespace: str, room: str,
                   join: bool) -> None: ...

    def disconnect_local(self, sid: str, eio_sid: str, namespace: str,
                         close: bool) -> Steps[None]: ...


class Local:
    """A manager as its handlers see it (a :class:`Context`): public names
    for the few of its methods they use, read from the manager at each use
    where a forked child has its own (``uid``, requests, stats)."""

    def __init__(self, mgr: Any):
        self._mgr = mgr
        self.targets = mgr._targets
        self.has_sockets = mgr._has_sockets
        self.deliver = mgr._deliver
        self.respond = mgr._respond
        self.send_with_acks = mgr._send_with_acks
        self.local_sockets = mgr._local_sockets
        self.event_handler = mgr._event_handler
        self.apply_room = mgr._apply_room
        self.disconnect_local = mgr._disconnect_local

    uid = property(lambda self: self._mgr.uid)
    requests = property(lambda self: self._mgr._requests)
    stats = property(lambda self: self._mgr._stats)
    log = property(lambda self: self._mgr._log)


class Inbound:
    """Decodes, de-duplicates and dispatches what the readers and the
    subscriber receive; counts and logs bad input."""

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._dedup = Dedup()
        self._skip_log = Throttle()

    def on_entry(self, key: str, entry_id: str,
                 fields: Any) -> Steps[None] | None:
        """A stream entry from a reader: its handler's steps, or None when
        there is nothing to do (our own entry, one for a namespace with no
        local socket, a copy, bad input)."""
        try:
            uid = protocol.field_text(fields, 'uid')
            if uid == self._ctx.uid:
                return None  # our own: delivered locally when emitted
            known = plain.fields(fields)
            if known is not None and uid:
                result = self._on_plain(key, entry_id, uid, *known)
                if result is not _GENERAL:
                    return result
            if uid and self._for_nobody_here(fields):
                return None
            message = protocol.decode_entry(fields)
        except ProtocolError as exc:
            self.skip(f'stream entry {entry_id} of {key!r}', exc)
            return None
        if self._dedup.is_copy(key, message.uid, message.seq,
                               protocol.raw_field(fields, 'data')):
            self._ctx.stats.incr('duplicates')
            return None
        message.offset = entry_id
        return self.handle(message, key)

    def _on_plain(self, key: str, entry_id: str, uid: str, nsp_field: bytes,
                  data: bytes, seq_field: bytes | None) -> Any:
        """``on_entry`` of a plain BROADCAST (see :mod:`.plain`) in one
        pass, with no message made: what the general path would do, or
        ``_GENERAL`` to leave it to it. Its rooms are read first: an
        entry for rooms with no local socket is not decoded further."""
        ctx = self._ctx
        try:
            nsp = nsp_field.decode()
            if not ctx.has_sockets(nsp):
                return None
            seq = None if seq_field is None else \
                protocol.seq_number(seq_field.decode())
        except UnicodeDecodeError:
            return _GENERAL
        tail = plain.tail_opts(data)
        parsed = None
        if tail is None or ctx.has_sockets(nsp, tail[1][0]):
            parsed = plain.broadcast(data, tail)
            if parsed is None:
                return _GENERAL
        if self._dedup.is_copy(key, uid, seq, data):
            ctx.stats.incr('duplicates')
            return None
        if parsed is None:
            return None  # for nobody here
        event_data, rooms, except_rooms, flags, text = parsed
        try:
            steps = ctx.deliver(nsp, event_data, rooms, except_rooms, None
                                if 'volatile' in flags else entry_id, True,
                                text)
        except Exception as exc:
            self._failed(exc, entry_id, key)
            return None
        return None if steps is None else self._guard(steps, entry_id, key)

    def _for_nobody_here(self, fields: Any) -> bool:
        """An entry of a namespace with no local socket that can only act
        on local sockets (told without decoding its data: the cost of an
        entry for other servers). Its copies are not remembered either: a
        copy reaching a socket that joined meanwhile is its first."""
        namespace = protocol.field_text(fields, 'nsp')
        return bool(namespace) and not self._ctx.has_sockets(namespace) \
            and for_sockets_only(fields)

    def on_pubsub(self, channel: str, payload: Any) -> Steps[None] | None:
        """A PUB/SUB message from the subscriber (as ``on_entry``)."""
        what = f'PUB/SUB message on {channel!r}'
        try:
            message = protocol.decode_pubsub(payload)
        except ProtocolError as exc:
            self.skip(what, exc)
            return None
        return None if message.uid == self._ctx.uid else \
            self.handle(message, what)

    def skip(self, what: str, exc: Exception) -> None:
        """Count bad input and log it in one line (a flood, in a few)."""
        self._ctx.stats.incr('skipped')
        allowed, held = self._skip_log.allow(time.monotonic())
        if allowed:
            self._ctx.log.warning(
                'skipping %s: %s%s', what, str(exc)[:300],
                f' ({held} more skipped before it, not logged)'
                if held else '')

    def dispatch(self, message: Message, what: str) -> Steps[None]:
        """Handle a message (steps); see ``handle``."""
        steps = self.handle(message, what)
        if steps is not None:
            yield from steps

    def handle(self, message: Message,
               where: str) -> Steps[None] | None:
        """Run the handler of the message's type: the steps left to do
        (None: done). ``where`` names it in log lines (with its offset,
        the stream it came from). Bad input is counted and skipped, an
        error logged: neither escapes."""
        handler = HANDLERS.get(message.type)
        if handler is None:
            self._ctx.log.debug('ignoring %s of type %s', _what(
                message.offset, where), message.type)
            return None
        if not isinstance(message.data, dict):  # every handled type's is
            self.skip(_what(message.offset, where), ProtocolError(
                f'message of type {message.type} has no data map'))
            return None
        try:
            steps = handler(self._ctx, message)  # None: nothing to do
        except Exception as exc:
            self._failed(exc, message.offset, where)
            return None
        return None if steps is None else \
            self._guard(steps, message.offset, where)

    def _guard(self, steps: Steps[None], offset: str | None,
               where: str) -> Steps[None]:
        try:
            yield from steps
        except Exception as exc:
            self._failed(exc, offset, where)

    def _failed(self, exc: Exception, offset: str | None,
                where: str) -> None:
        if isinstance(exc, ProtocolError):
            self.skip(_what(offset, where), exc)
            return
        self._ctx.stats.incr('errors')
        self._ctx.log.error('error handling %s', _what(offset, where),
                            exc_info=exc)


#: what ``Inbound._on_plain`` returns to leave an entry to the general path
_GENERAL = object()

#: the ``type`` of entries that act on local sockets only, as read
_ROOM_TYPES = frozenset({'4', '5', '6', b'4', b'5', b'6'})


def for_sockets_only(fields: Any) -> bool:
    """True if a stream entry can only act on local sockets of its
    namespace, told from its raw fields without decoding its data: a
    SOCKETS_JOIN, SOCKETS_LEAVE, DISCONNECT_SOCKETS, or a BROADCAST in
    JSON without ``requestId`` (Node never writes one with it)."""
    type_ = protocol.raw_field(fields, 'type')
    if type(type_) not in (bytes, str):
        return False
    if type_ in _ROOM_TYPES:
        return True
    data = protocol.raw_field(fields, 'data')
    if type_ == b'3' and type(data) is bytes:
        return data[:1] == b'{' and b'"requestId"' not in data
    if type_ == '3' and type(data) is str:
        return data[:1] == '{' and '"requestId"' not in data
    return False


def _what(offset: str | None, where: str) -> str:
    """A message's name in log lines (``offset``: its stream entry's)."""
    return f'stream entry {offset} of {where!r}' \
        if offset is not None else where


def on_broadcast(ctx: Context, message: Message) -> Steps[None] | None:
    event_data, rooms, except_rooms, flags, request_id = \
        protocol.parse_broadcast(message.data)
    if request_id is None:
        return ctx.deliver(
            message.nsp, event_data, rooms, except_rooms,
            None if 'volatile' in flags else message.offset, message.plain)
    return _broadcast_with_ack(ctx, message, event_data, rooms,
                               except_rooms, flags, request_id)


def _broadcast_with_ack(ctx: Context, message: Message, event_data: list,
                        rooms: list, except_rooms: list, flags: dict,
                        request_id: str) -> Steps[None]:
    targets = ctx.targets(message.nsp, rooms, except_rooms)
    yield from ctx.respond(message, T.BROADCAST_CLIENT_COUNT, {
        'requestId': request_id, 'clientCount': len(targets)})
    yield from ctx.send_with_acks(
        message.nsp, event_data, targets,
        functools.partial(send_ack, ctx, message, request_id),
        time.monotonic() + ack_ttl(flags))


def send_ack(ctx: Context, request: Message, request_id: str,
             *args: Any) -> Steps[None]:
    """Pass a local client's answer on to the server that asked."""
    data: dict = {'requestId': request_id,
                  'packet': args[0] if args else None}
    if len(args) != 1:  # Node keeps the first argument only
        data['args'] = list(args)
    yield from ctx.respond(request, T.BROADCAST_ACK, data)


def ack_ttl(flags: dict) -> float:
    """How long a client's answer to another server's request is awaited:
    the request's own ``timeout`` flag (ms, as Node sends it), at most
    ``CALLBACK_TTL``."""
    timeout = flags.get('timeout')
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) \
            and timeout > 0:
        return min(timeout / 1000 + 1, CALLBACK_TTL)
    return CALLBACK_TTL


def on_broadcast_ack(ctx: Context, message: Message) -> Steps[None]:
    request = ctx.requests.answered(message)
    if request is None:
        return
    args = message.data.get('args')
    if not isinstance(args, list):
        args = [message.data.get('packet')]
    if request.on_ack(message.uid, args):
        ctx.requests.discard(message.data['requestId'])
    callback = getattr(request, 'callback', None)
    if callback is not None:  # an emit's callback: it may be a coroutine
        yield partial(callback, *args)


def on_client_count(ctx: Context, message: Message) -> None:
    request = ctx.requests.answered(message)
    count = message.data.get('clientCount')
    if request is not None and isinstance(count, int):
        if request.on_count(message.uid, count):
            ctx.requests.discard(message.data['requestId'])


def on_fetch_sockets(ctx: Context, message: Message) -> Steps[None]:
    request_id = protocol.request_id(message.data)
    rooms, except_rooms, flags = protocol.parse_opts(message.data)
    sockets = yield from ctx.local_sockets(message.nsp, {
        'rooms': rooms, 'except': except_rooms})
    yield from ctx.respond(message, T.FETCH_SOCKETS_RESPONSE, {
        'requestId': request_id, 'sockets': sockets})


def on_fetch_response(ctx: Context, message: Message) -> None:
    request = ctx.requests.answered(message)
    sockets = message.data.get('sockets')
    if request is not None and isinstance(sockets, list):
        request.on_answer(message.uid, [
            s for s in sockets if isinstance(s, dict)
            and isinstance(s.get('id'), str)])


def on_server_side_emit(ctx: Context, message: Message) -> Steps[None]:
    packet = message.data.get('packet') \
        if isinstance(message.data, dict) else None
    if not isinstance(packet, list) or not packet or \
            not isinstance(packet[0], str):
        raise ProtocolError('server-side emit packet is not [event, ...]')
    request_id = protocol.request_id(message.data)
    handler = ctx.event_handler(message.nsp, packet[0])
    if handler is None:
        if request_id is not None:  # Node's callers wait for every server
            yield from ctx.respond(message, T.SERVER_SIDE_EMIT_RESPONSE, {
                'requestId': request_id, 'packet': None})
        return
    # a plain function or a coroutine function (asyncio)
    result = yield partial(handler, *packet[1:])
    if request_id is not None:
        yield from ctx.respond(message, T.SERVER_SIDE_EMIT_RESPONSE, {
            'requestId': request_id, 'packet': result})


def on_server_side_response(ctx: Context, message: Message) -> None:
    request = ctx.requests.answered(message)
    if request is not None:
        request.on_answer(message.uid, message.data.get('packet'))


def on_sockets_join(ctx: Context, message: Message) -> None:
    apply_rooms(ctx, message, join=True)


def on_sockets_leave(ctx: Context, message: Message) -> None:
    apply_rooms(ctx, message, join=False)


def apply_rooms(ctx: Context, message: Message, join: bool) -> None:
    rooms, except_rooms, _flags = protocol.parse_opts(message.data)
    new_rooms = protocol.parse_rooms(message.data)
    for sid, _eio_sid in ctx.targets(message.nsp, rooms, except_rooms):
        for room in new_rooms:
            try:
                ctx.apply_room(sid, message.nsp, room, join)
            except ValueError as exc:  # e.g. joining another sid's room
                ctx.log.warning('cannot apply room %r to %s: %s',
                                room, sid, exc)


def on_disconnect_sockets(ctx: Context, message: Message) -> Steps[None]:
    rooms, except_rooms, _flags = protocol.parse_opts(message.data)
    close = bool(message.data.get('close'))
    for sid, eio_sid in ctx.targets(message.nsp, rooms, except_rooms):
        yield from ctx.disconnect_local(sid, eio_sid, message.nsp, close)


HANDLERS: dict[int, Callable[[Any, Message], Steps[None] | None]] = {
    T.BROADCAST: on_broadcast,
    T.SOCKETS_JOIN: on_sockets_join,
    T.SOCKETS_LEAVE: on_sockets_leave,
    T.DISCONNECT_SOCKETS: on_disconnect_sockets,
    T.BROADCAST_CLIENT_COUNT: on_client_count,
    T.BROADCAST_ACK: on_broadcast_ack,
    T.FETCH_SOCKETS: on_fetch_sockets,
    T.FETCH_SOCKETS_RESPONSE: on_fetch_response,
    T.SERVER_SIDE_EMIT: on_server_side_emit,
    T.SERVER_SIDE_EMIT_RESPONSE: on_server_side_response,
}
