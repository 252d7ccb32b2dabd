"""Cluster-wide operations of both managers (a mixin of ``ManagerCore``),
as steps: requests to every server and what they wait for; the
bookkeeping of the waits is ``cluster.Requests``."""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

from socketio import packet as sio_packet

from . import arguments, protocol
from .cluster import (SELF, AckExpiry, BroadcastAcks, ClientAcks,
                      RemoteSocket, Request, handshake, new_request_id)
from .delivery import encode
from .exceptions import AckTimeoutError
from .handlers import CALLBACK_TTL
from .operations import operation
from .protocol import Message, MessageType as T
from .steps import Steps

#: most ack ids held for local clients on behalf of other servers' requests
MAX_REMOTE_ACKS = 10_000


class ClusterOps:
    """``fetch_sockets``, ``sockets_join``/``leave``,
    ``disconnect_sockets``, ``emit_with_ack``, ``server_side_emit``,
    ``server_count``, ``on``; emits with a callback to other servers."""

    uid: str
    options: Any
    write_only: bool
    sockets: Any
    _links: Any
    _requests: Any
    _runtime: Any
    _inbound: Any
    _closed: bool
    _handlers_by_event: dict
    _stats: Any
    _remote_acks: AckExpiry
    _base: Any
    server: Any
    callbacks: dict

    @operation
    def fetch_sockets(self, to: Any = None, skip_sid: Any = None,
                      namespace: str = '/',
                      timeout: float = 5.0) -> Steps[list[RemoteSocket]]:
        """The matching sockets of every server (``to``: room(s), None for
        all; ``skip_sid``: room(s)/sid(s) to leave out). Raises
        :class:`AckTimeoutError` (``.responses``: the sockets found) if a
        live server did not answer within ``timeout`` seconds."""
        namespace = arguments.namespace(namespace)
        opts = protocol.make_opts(to, skip_sid)
        found = [RemoteSocket(self, namespace, info, self.uid) for info in
                 (yield from self._local_sockets(namespace, opts))]
        request_id, request = yield from self._request(namespace, Request,
                                                       timeout)
        yield from self._links.publish(namespace, T.FETCH_SOCKETS, {
            'opts': opts, 'requestId': request_id})

        def sockets(req: Request) -> list[RemoteSocket]:
            return found + [RemoteSocket(self, namespace, info, uid)
                            for uid, infos in req.answers.items()
                            for info in infos]

        yield from self._requests.wait(namespace, request_id, request,
                                       timeout, 'fetch_sockets', sockets,
                                       self._runtime)
        return sockets(request)

    @operation
    def sockets_join(self, rooms: Any, to: Any = None, skip_sid: Any = None,
                     namespace: str = '/') -> Steps[None]:
        """Make the matching sockets of every server join ``rooms``."""
        yield from self._rooms_op(T.SOCKETS_JOIN, rooms, to, skip_sid,
                                  namespace)

    @operation
    def sockets_leave(self, rooms: Any, to: Any = None, skip_sid: Any = None,
                      namespace: str = '/') -> Steps[None]:
        """Make the matching sockets of every server leave ``rooms``."""
        yield from self._rooms_op(T.SOCKETS_LEAVE, rooms, to, skip_sid,
                                  namespace)

    def _rooms_op(self, type_, rooms, to, skip_sid,
                  namespace) -> Steps[None]:
        namespace = arguments.namespace(namespace)
        message = Message(type_, {'opts': protocol.make_opts(to, skip_sid),
                                  'rooms': protocol.room_list(rooms,
                                                              'rooms')},
                          self.uid, namespace)
        yield from self._links.publish(namespace, type_, message.data)
        yield from self._inbound.dispatch(message, 'local room operation')

    @operation
    def disconnect_sockets(self, to: Any = None, skip_sid: Any = None,
                           close: bool = False,
                           namespace: str = '/') -> Steps[None]:
        """Disconnect the matching sockets of every server from the
        namespace (``close=True``: close their whole connection)."""
        namespace = arguments.namespace(namespace)
        message = Message(T.DISCONNECT_SOCKETS, {
            'opts': protocol.make_opts(to, skip_sid), 'close': bool(close)},
            self.uid, namespace)
        yield from self._links.publish(namespace, T.DISCONNECT_SOCKETS,
                                       message.data)
        yield from self._inbound.dispatch(message, 'local disconnect')

    @operation
    def emit_with_ack(self, event: str, data: Any = None, to: Any = None,
                      skip_sid: Any = None, namespace: str = '/',
                      timeout: float = 5.0) -> Steps[list]:
        """Broadcast and wait for every client of every server to answer;
        returns the answers. Raises :class:`AckTimeoutError` (``.responses``:
        the answers that came) after ``timeout`` seconds."""
        if self.server is None:
            raise RuntimeError('emit_with_ack needs a server, not write_only')
        namespace = arguments.namespace(namespace)
        event_data = arguments.event_data(event, data)
        opts = protocol.make_opts(to, skip_sid,
                                  {'timeout': int(timeout * 1000)})
        request_id, request = yield from self._request(
            namespace, BroadcastAcks, timeout)
        yield from self._links.publish(
            namespace, T.BROADCAST,
            protocol.broadcast_data(event_data, opts, request_id))
        targets = self._targets(namespace, opts['rooms'], opts['except'])
        request.on_count(SELF, len(targets))
        yield from self._send_with_acks(
            namespace, event_data, targets,
            lambda *args: request.on_ack(SELF, list(args)))
        yield from self._requests.wait(namespace, request_id, request,
                                       timeout, 'emit_with_ack',
                                       lambda r: list(r.acks), self._runtime)
        return list(request.acks)

    def _emit_with_callback(self, event, data, event_data, namespace, room,
                            skip_sid, callback) -> Steps[None]:
        protocol.make_opts(room, skip_sid)  # TypeError before anything
        local_emit = partial(self._base.emit, self, event, data, namespace,
                             room=room, skip_sid=skip_sid, callback=callback)
        if isinstance(room, str) and self._is_local(room, namespace):
            return (yield local_emit)
        if self.server is None:
            raise RuntimeError('Callbacks can only be issued from the '
                               'context of a server.')
        # the answers come on the namespace's private channel: subscribed
        # before the request goes (a concurrent first call may be the one
        # still subscribing)
        yield from self._links.listen()
        yield from self._links.watch(namespace)
        request_id = new_request_id()
        self._requests.add(request_id, ClientAcks(
            callback, time.monotonic() + CALLBACK_TTL,
            single=isinstance(room, str)))
        opts = protocol.make_opts(room, skip_sid)
        yield from self._links.publish(
            namespace, T.BROADCAST,
            protocol.broadcast_data(event_data, opts, request_id))
        if not isinstance(room, str):  # local members too (all if None)
            yield local_emit

    def on(self, event: str, handler: Callable | None = None,
           namespace: str = '/') -> Any:
        """Register a handler for ``server_side_emit`` events from other
        servers; its return value answers an emit with a callback. Usable
        as ``mgr.on(event, handler)`` or as a decorator ``@mgr.on(event)``.
        """
        namespace = arguments.namespace(namespace)
        arguments.check_event(event)

        def register(func: Callable) -> Callable:
            self._handlers_by_event[(namespace, event)] = func
            self._listen_early()
            if self._links.listening:
                self._soon(self._links.watch(namespace))
            return func
        return register(handler) if handler is not None else register

    def _event_handler(self, namespace: str, event: str) -> Callable | None:
        """The ``mgr.on`` handler of a server-side event."""
        return self._handlers_by_event.get((namespace, event))

    @operation
    def server_side_emit(self, event: str, *args: Any, namespace: str = '/',
                         callback: Callable | None = None,
                         timeout: float = 5.0) -> Steps[None]:
        """Send an event to every *other* server's ``@mgr.on`` handlers.

        With ``callback(err, responses)``, each server's answer comes back;
        ``err`` is an :class:`AckTimeoutError` if one did not answer in
        ``timeout`` seconds (``responses`` then holds those that did). The
        wait runs in a background task: this call does not block. Handlers
        and the callback may be coroutine functions (asyncio)."""
        namespace = arguments.namespace(namespace)
        arguments.check_event(event)
        packet = [event, *args]
        if callback is None:
            yield from self._links.publish(namespace, T.SERVER_SIDE_EMIT,
                                           {'packet': packet})
            return
        if self.write_only:
            raise RuntimeError('a write_only manager cannot receive answers')
        request_id, request = yield from self._request(namespace, Request,
                                                       timeout)
        yield from self._links.publish(namespace, T.SERVER_SIDE_EMIT, {
            'requestId': request_id, 'packet': packet})

        def wait() -> Steps[None]:
            try:
                answers = yield from self._requests.wait(
                    namespace, request_id, request, timeout,
                    'server_side_emit', lambda r: list(r.answers.values()),
                    self._runtime)
            except AckTimeoutError as exc:
                yield partial(callback, exc, exc.responses)
                return
            yield partial(callback, None, list(answers.values()))

        self._runtime.spawn(wait())

    @operation
    def server_count(self, namespace: str = '/') -> Steps[int]:
        """Live servers of the namespace (subscribers of its public
        channel, as Node counts them; summed over a cluster's nodes). A
        write_only emitter that made requests listens too, but is not a
        server: it does not count itself."""
        namespace = arguments.namespace(namespace)
        if (self._links.listening or self._links.listen_soon) and \
                not self.options.write_only:
            # this server counts itself once its SUBSCRIBE went (asyncio:
            # initialize() could not wait for it, nor may its task have
            # run yet)
            yield from self._links.listen()
            yield from self._links.watch(namespace)
        count = yield from self._requests.server_count(namespace)
        if self.options.write_only and namespace in self._links.watched:
            count -= 1
        return max(count, 0)

    def _request(self, namespace: str, kind: type,
                 timeout: float) -> Steps[tuple[str, Any]]:
        """Listen (the answers come on our private channel), then open a
        request."""
        if self._closed:
            raise RuntimeError('the manager is closed')
        yield from self._links.listen()
        yield from self._links.watch(namespace)
        return (yield from self._requests.open(namespace, kind, timeout,
                                               self._runtime.event()))

    def _local_sockets(self, namespace: str,
                       opts: dict) -> Steps[list[dict]]:
        """Node's socket descriptions of the matching local sockets."""
        result = []
        for sid, eio_sid in self._targets(namespace, opts['rooms'],
                                          opts['except']):
            sock = self.sockets.get(namespace, sid)
            connected_at, auth = (sock.connected_at, sock.auth) \
                if sock is not None else (time.time(), None)
            result.append({
                'id': sid,
                'handshake': handshake(self.server.environ.get(eio_sid, {}),
                                       auth, connected_at),
                'rooms': [sid, *(r for r in self.get_rooms(sid, namespace)
                                 if r != sid)],
                'data': (yield from self._session(sid, namespace))})
        return result

    def _send_with_acks(self, namespace: str, event_data: list,
                        targets: list, ack: Callable,
                        expires: float | None = None) -> Steps[None]:
        """Send an EVENT with an ack id to each target. ``expires``: the
        ids are forgotten then (answers for another server's request: if
        its clients never answer, the table must not grow)."""
        if targets:  # ProtocolError if it can't be encoded
            encode(self.server.packet_class, namespace, event_data)
        ack = self._runtime.function(ack)  # called by python-socketio
        for sid, eio_sid in targets:
            ack_id = self._generate_ack_id(sid, ack)
            if expires is not None:
                self._remote_acks.add(expires, sid, ack_id)
            pkt = self.server.packet_class(
                sio_packet.EVENT, namespace=namespace, data=event_data,
                id=ack_id)
            yield partial(self.server._send_packet, eio_sid, pkt)
        self._stats.incr('delivered', len(targets))
        for sid, ack_id in self._remote_acks.due(time.monotonic()):
            self.callbacks.get(sid, {}).pop(ack_id, None)

    # what the subclass provides
    _targets: Any
    _session: Any
    _is_local: Any
    _listen_early: Any
    _soon: Any
    _generate_ack_id: Any
    get_rooms: Any
