"""What both managers do, written once as steps (see :mod:`.steps`): the
life cycle, python-socketio's manager hooks, and what the handlers and the
other parts do through the manager. ``RedisStreamsManager`` (sync) and
``AsyncRedisStreamsManager`` (asyncio) add their world: python-socketio's
manager class, the runtime, the clients, and how steps are driven.

The parts: ``links`` (publisher, readers, subscriber), ``handlers`` (what
inbound messages do), ``delivery`` (which local sockets get a packet),
``restore`` (connection state recovery), ``cluster_ops`` (requests to
every server), ``local_ops`` (what the handlers do to local sockets),
``sockets`` (per-socket state), ``server_hooks`` (patches of
python-socketio's private methods), ``admin`` (the Admin UI).
"""
from __future__ import annotations

import os
import secrets
import threading
import time
import weakref
from functools import partial
from socket import gethostname
from typing import TYPE_CHECKING, Any, Callable

from socketio.base_manager import BaseManager

from . import arguments, plain, protocol, server_hooks
from .cluster import AckExpiry, Requests
from .cluster_ops import MAX_REMOTE_ACKS, ClusterOps
from .connection import Connector
from .delivery import Delivery
from .handlers import Inbound, Local
from .links import Links
from .local_ops import LocalOps
from .operations import operation
from .options import Options, default_logger
from .protocol import MessageType as T
from .recovery import Recovery
from .restore import RECOVERABLE, Restoring
from .runtime import Runtime, check_patched
from .sockets import LocalSockets
from .stats import Stats
from .steps import Steps, done

if TYPE_CHECKING:
    from .operations import Untyped as _Base
else:
    _Base = BaseManager


class ManagerCore(ClusterOps, Restoring, LocalOps, _Base):
    """The shared body of both managers (their docstrings tell the
    options). A face sets ``_base`` (python-socketio's ``Manager`` or
    ``AsyncManager``), ``_runtime_class``, ``_asyncio`` and ``_soon``."""

    name = 'redis-streams'
    _base: Any = BaseManager
    _runtime_class: type = Runtime
    _asyncio = False

    def __init__(self, url: str | None = 'redis://localhost:6379/0', *,
                 client: Any = None, redis_options: dict | None = None,
                 **options: Any):
        unknown = set(options) - Options.names()
        if unknown:
            raise ValueError('unknown option(s): '
                             + ', '.join(sorted(unknown)))
        if redis_options is not None and not isinstance(redis_options, dict):
            raise ValueError(f'redis_options must be a dict, '
                             f'got {redis_options!r}')
        self._base.__init__(self)
        self.options = Options(**options)
        self.logger = self.options.logger
        self.write_only = self.options.write_only
        self._connector = Connector(url, client, redis_options,
                                    asyncio=self._asyncio)
        self._runtime = self._runtime_class()
        #: the state of each local socket
        self.sockets = LocalSockets()
        self._delivery = Delivery(self, self.sockets, threading.Lock)
        self._inbound = Inbound(Local(self))
        self._links = Links(self)
        self._new_process()
        _open_managers.add(self)
        self._remote_acks = AckExpiry(MAX_REMOTE_ACKS)
        self._handlers_by_event: dict[tuple[str, str], Callable] = {}
        self._recovery = Recovery(self._connector, self.options, self._log) \
            if self.options.connection_state_recovery else None
        self._closed = False

    def _new_process(self) -> None:
        """What each process has of its own: an identity among the
        servers, tasks, locks (see ``RedisStreamsManager``'s fork
        handling)."""
        self.uid = secrets.token_hex(8)
        #: how python-socketio's Admin UI names this server: unique, and
        #: readable (hostname#pid#uid, as Node's admin-ui names a worker)
        self.host_id = f'{gethostname()}#{os.getpid()}#{self.uid}'
        self._stats = Stats()
        self._requests = Requests(self._connector, self.options, self.uid)
        self._links = Links(self, self._links.pin_failed_at)
        self._delivery.renew(threading.Lock)

    def _soon(self, steps: Steps) -> None:
        """Run steps that a plain call (``set_server``, ``on``) cannot
        wait for: the face decides how."""
        raise NotImplementedError

    # --- life cycle ----------------------------------------------------------

    def set_server(self, server: Any) -> None:
        self._base.set_server(self, server)
        self._runtime = self._runtime_class(server)
        server_hooks.install(server, self, self._recovery is not None)
        if self._handlers_by_event:
            self._listen_early()

    def _listen_early(self) -> None:
        """A server with handlers for server-side events listens at once,
        as a Node server does, not at its first connection (when
        python-socketio initializes its manager): an event sent before
        any client came must reach it. Not in a process that is not ready
        for background tasks (eventlet or gevent not patched yet, as in a
        gunicorn ``--preload`` master): the first connection starts it.
        A write_only emitter with handlers listens too (as it does for
        ``fetch_sockets``)."""
        if self._links.listening or (self.server is None and
                                     not self.write_only):
            return
        try:
            check_patched(self._runtime.async_mode)
        except RuntimeError:
            return
        self._listen_soon()

    def _listen_soon(self) -> None:
        """Start listening as the face can (asyncio: in a task); from now
        on ``server_count`` waits for it."""
        self._links.listen_soon = True
        self._soon(self._links.listen())

    def initialize(self) -> None:
        """Called by the server before its first connection."""
        self._base.initialize(self)
        check_patched(self._runtime.async_mode)
        self._links.start_publisher()
        if not self.write_only:
            self._listen_soon()
        self._log.info('%s backend initialized (%s)', self.name,
                       self._connector.describe())

    def _known_namespaces(self) -> set[str]:
        names = {'/'} | set(getattr(self.server, 'handlers', {}))
        names |= {namespace for namespace, _ in self._handlers_by_event}
        names |= set(getattr(self.server, 'namespace_handlers', {}))
        if isinstance(getattr(self.server, 'namespaces', None), list):
            names |= set(self.server.namespaces)
        return {n for n in names if isinstance(n, str) and n != '*'}

    @operation
    def close(self, timeout: float = 5.0) -> Steps[None]:
        """Flush the queue, stop the tasks and disconnect, within about
        ``timeout`` seconds; what could not be written is logged, with
        why. ``server.shutdown()`` calls it.

        Afterwards the manager is local: ``emit`` still reaches this
        server's clients (with recovery on too, without an offset) and
        room operations on them work, but nothing more goes to Redis
        (one warning, then debug lines): a server's own background tasks
        (the Admin UI's stats) do not fail. Requests that wait for other
        servers (``fetch_sockets``, ``emit_with_ack``, ``server_side_emit``
        with a callback) raise ``RuntimeError``."""
        with self._links.lock:
            if self._closed:
                return
            self._closed = True
        self._forget()
        yield from self._links.close(timeout)
        yield partial(self._connector.close, self._log.debug)

    def _forget(self) -> None:
        """A closed manager is no longer renewed after a fork, nor
        flushed at exit."""
        _open_managers.discard(self)

    @operation
    def flush(self, timeout: float = 5.0) -> Steps[bool]:
        """Wait until everything queued is in Redis, and handled (with
        recovery on, delivered to this server's clients); False on
        timeout. The way for a test to wait before looking at what its
        clients received (Flask-SocketIO's ``test_client``)."""
        publisher = self._links.publisher
        if publisher is None:
            return True
        return (yield from publisher.flush(timeout))

    def stats(self) -> dict:
        """Counters: published, delivered, buffered, reconnects, gaps,
        duplicates, skipped (bad input), errors, buffer_full, resent;
        ``lag``: entries in the streams not read yet (0 when caught up),
        summed; ``streams``: per stream key read, ``{'lag': n, 'last_id':
        id}``."""
        snapshot: dict = self._stats.snapshot()
        publisher = self._links.publisher
        snapshot['buffered'] = publisher.buffered if publisher else 0
        snapshot['streams'] = self._links.streams()
        snapshot['lag'] = sum(s['lag'] for s in snapshot['streams'].values())
        snapshot['pending_requests'] = len(self._requests)
        snapshot['healthy'] = self.healthy()
        return snapshot

    def healthy(self) -> bool:
        """True while the publisher and readers are connected and keeping
        up: the readers less than ``max_len / 2`` entries behind (further,
        trimming is about to remove entries they have not read), and no
        stream they were reading has vanished."""
        return not self._closed and self._links.healthy()

    @property
    def _log(self):
        """Our own logger by default, not the server's: python-socketio
        silences its logger below ERROR unless ``logger=True``, and a lost
        Redis connection must not go unreported."""
        return self.logger or default_logger()

    def _stream(self, namespace: str) -> str:
        return self._links.stream(namespace)

    # --- python-socketio hooks -----------------------------------------------

    @operation
    def pre_connect(self, eio_sid: str, namespace: str) -> Steps[Any]:
        if not self.write_only:  # (asyncio: initialize() could not wait)
            yield from self._links.listen()
        yield from self._links.watch(namespace)
        handshake = self.sockets.handshake_of(eio_sid, namespace)
        session = handshake.session if handshake else None
        sid = (yield from self._pre_restore(eio_sid, namespace, session)) \
            if session else None
        if handshake is not None:
            handshake.session = None
        if sid is None:
            sid = self._register(eio_sid, namespace)
        if sid is not None:
            sock = self.sockets.add(namespace, sid)
            sock.connected_at = time.time()
            sock.auth = handshake.auth if handshake else None
            if self._recovery is not None and sock.pid is None:
                sock.pid = self.server.eio.generate_id()
        return sid

    @operation
    def connect(self, sid: str, namespace: str) -> Steps[Any]:
        if not self.is_pre_connected(sid, namespace):
            # a complete connection attempt: sid is the eio_sid
            sid = yield from ManagerCore.pre_connect(self, sid, namespace)
        sid = BaseManager.connect(self, sid, namespace)
        sock = self.sockets.get(namespace, sid)
        if sock is not None and sock.restoring is not None:
            yield from self._replay(sid, namespace)
        return sid

    @operation
    def disconnect(self, sid: str, namespace: str,
                   **kwargs: Any) -> Steps[Any]:
        sock = self.sockets.get(namespace, sid)
        if self._recovery is not None and sock is not None and \
                sock.reason in RECOVERABLE:
            yield from self._persist(sid, namespace)
        self.sockets.remove(namespace, sid)
        return self.basic_disconnect(sid, namespace, **kwargs)

    def is_recovered(self, sid: str, namespace: str = '/') -> bool:
        """True if this connection restored a previous session."""
        sock = self.sockets.get(namespace, sid)
        return sock is not None and sock.replayed is not None

    @operation
    def emit(self, event: str, data: Any, namespace: str | None = None,
             room: Any = None, skip_sid: Any = None,
             callback: Callable | None = None, to: Any = None,
             **kwargs: Any) -> Steps[None]:
        """Emit to clients on every server; same arguments as
        ``socketio.Server.emit``. Queues the packet and returns: it never
        waits for Redis (unless the buffer is full, see ``buffer_size``).

        This server's own clients get it at once; with connection state
        recovery on, they get it with its stream offset, so only once
        Redis has stored it (one round trip; during an outage, when Redis
        is back, in order, as the other servers' clients do):
        ``flush()`` waits for that. After ``close()``, local only."""
        room = to if to is not None else room
        namespace = arguments.namespace(namespace)
        if kwargs.get('ignore_queue'):
            return (yield partial(self._base.emit, self, event, data,
                                  namespace, room=room, skip_sid=skip_sid,
                                  callback=callback))
        event_data = arguments.event_data(event, data)
        if callback is not None:
            return (yield from self._emit_with_callback(
                event, data, event_data, namespace, room, skip_sid,
                callback))
        opts = protocol.make_opts(room, skip_sid)
        # JSON (no bytes): written once, for the entry and local clients
        text = None if self.options.only_plaintext else \
            plain.event_json(event_data)
        if text is not None:
            fields = self._links.broadcast_entry(
                namespace, plain.broadcast_data(text, opts))
        else:
            fields = self._links.entry(namespace, T.BROADCAST, protocol
                                       .broadcast_data(event_data, opts))

        def deliver(offset: str | None = None) -> Steps[None] | None:
            return self._deliver(namespace, event_data, opts['rooms'],
                                 opts['except'], offset, text=text)

        if self._recovery is not None and self.server is not None and \
                not self._closed:
            # every client gets the stream offset: wait for the XADD reply
            yield from self._links.append(
                namespace, fields, on_written=lambda entry_id: deliver(
                    protocol.as_text(entry_id)))
            return
        yield from self._links.append(namespace, fields)
        yield from deliver() or done()

    @operation
    def enter_room(self, sid: str, namespace: str, room: str,
                   eio_sid: str | None = None) -> Steps[None]:
        namespace = self._room_call(sid, namespace, room)
        if self._is_local(sid, namespace):
            return self.basic_enter_room(sid, namespace, room,
                                         eio_sid=eio_sid)
        yield from self._links.publish(namespace, T.SOCKETS_JOIN, {
            'opts': protocol.make_opts(sid), 'rooms': [room]})

    @operation
    def leave_room(self, sid: str, namespace: str,
                   room: str) -> Steps[None]:
        namespace = self._room_call(sid, namespace, room)
        if self._is_local(sid, namespace):
            return self.basic_leave_room(sid, namespace, room)
        yield from self._links.publish(namespace, T.SOCKETS_LEAVE, {
            'opts': protocol.make_opts(sid), 'rooms': [room]})

    @operation
    def close_room(self, room: str, namespace: str) -> Steps[None]:
        namespace = arguments.namespace(namespace)
        protocol.room_list(room)
        yield from self._links.publish(namespace, T.SOCKETS_LEAVE, {
            'opts': protocol.make_opts(room), 'rooms': [room]})
        return self.basic_close_room(room, namespace)

    @operation
    def can_disconnect(self, sid: str, namespace: str) -> Steps[bool]:
        namespace = arguments.namespace(namespace)
        if self._is_local(sid, namespace):
            return self.is_connected(sid, namespace)
        yield from self._links.publish(namespace, T.DISCONNECT_SOCKETS, {
            'opts': protocol.make_opts(sid), 'close': False})
        return False

    def _room_call(self, sid: Any, namespace: Any, room: Any) -> str:
        """Check the arguments of enter_room/leave_room as python-socketio
        would (ValueError for a sid of this server that is not in the
        namespace), and that the room can cross servers (a str)."""
        namespace = arguments.namespace(namespace)
        if not isinstance(sid, str):
            raise TypeError(f'sid must be a str, got {sid!r}')
        if not isinstance(room, str):
            raise TypeError(f'room must be a str, got {room!r}')
        if not self._is_local(sid, namespace) and any(
                sid in rooms.get(None, ()) for rooms in self.rooms.values()):
            raise ValueError('sid is not connected to requested namespace')
        return namespace

    def _session(self, sid: str, namespace: str) -> Steps[Any]:
        try:
            return (yield partial(self.server.get_session, sid,
                                  namespace=namespace))
        except Exception:  # e.g. a socket that is leaving
            return {}

    def _is_local(self, sid: Any, namespace: str) -> bool:
        return self.is_connected(sid, namespace) or \
            self.is_pre_connected(sid, namespace)


#: the managers of this process not closed yet (both faces)
_open_managers: weakref.WeakSet = weakref.WeakSet()


def _after_fork() -> None:
    """Each child of a ``fork()`` (gunicorn ``--preload``) gets an identity
    among the servers, tasks and locks of its own: the parent's tasks did
    not come along, what it queued is its own to send, and two processes
    sharing a uid would take each other's packets for their own and drop
    them. The child starts listening again at its first connection."""
    for mgr in list(_open_managers):
        mgr._new_process()


os.register_at_fork(after_in_child=_after_fork)
