"""``RedisStreamsManager``: python-socketio's hooks <-> stream and PUB/SUB."""
from __future__ import annotations

import atexit
import functools
import os
import secrets
import threading
import time
import weakref
from typing import Any, Callable

from bidict import ValueDuplicationError
from engineio import packet as eio_packet
from socketio import Manager
from socketio import packet as sio_packet

from . import protocol
from .cluster import (SELF, AckExpiry, BroadcastAcks, ClientAcks,
                      RemoteSocket, Request, Requests, handshake,
                      new_request_id)
from .connection import Connector
from .dedup import Dedup
from .exceptions import AckTimeoutError
from .options import Options, default_logger
from .protocol import Message, MessageType as T, ProtocolError
from .publisher import Item, Publisher
from .reader import StreamReader, Subscriber
from .recovery import Recovery
from .runtime import Runtime, check_patched
from .stats import Stats, Throttle

#: how long the answer to an ``emit(..., callback=)`` aimed at another
#: server is awaited (python-socketio's own ``call`` gives up after 60 s)
CALLBACK_TTL = 120.0
#: disconnection reasons after which a session is kept for recovery
RECOVERABLE = ('transport close', 'transport error', 'ping timeout')
#: how long after new channels were added connections wait for their
#: SUBSCRIBE to be sent (a few ms while Redis answers)
SUBSCRIBE_WAIT = 1.0
#: how long the first connection to a namespace waits for ``XINFO`` (to pin
#: its stream's reader); a Redis that does not answer within it is not asked
#: again for ``PIN_RETRY_AFTER`` seconds: the reader pins by the clock
PIN_TIMEOUT = 0.5
PIN_RETRY_AFTER = 5.0
#: how long the interpreter's exit waits, for all managers together, to
#: flush what they queued
EXIT_WAIT = 2.0
#: most ack ids held for local clients on behalf of other servers' requests
MAX_REMOTE_ACKS = 10_000


class RedisStreamsManager(Manager):
    """A python-socketio client manager that links servers through Redis
    Streams, wire-compatible with Node's ``@socket.io/redis-streams-adapter``.

    Emits and room operations are appended to a stream that every server
    tails with ``XREAD BLOCK``, resuming from its last entry after a lost
    connection, so nothing is lost while Redis is briefly unreachable.
    Requests and replies (acknowledgements) use PUB/SUB. Usage::

        mgr = socketio_streams.RedisStreamsManager('redis://localhost:6379/0')
        sio = socketio.Server(client_manager=mgr)

    :param url: ``redis://``, ``rediss://``, ``unix://``, ``valkey://``,
        ``valkeys://``, ``redis+sentinel://`` or ``redis+cluster://`` URL.
    :param client: an existing redis/valkey client to use instead of ``url``.
    :param stream_name: the stream key (a prefix if ``stream_count`` > 1).
    :param stream_count: namespaces are spread over this many streams.
    :param channel_prefix: prefix of the PUB/SUB channels.
    :param use_sharded_pubsub: ``SPUBLISH``/``SSUBSCRIBE`` (Redis >= 7.0).
    :param max_len: approximate stream length kept (``XADD MAXLEN ~``).
    :param read_count: entries fetched per ``XREAD``.
    :param block_time_ms: how long one ``XREAD BLOCK`` waits.
    :param session_key_prefix: key prefix of stored recovery sessions.
    :param only_plaintext: always JSON in the stream, never msgpack.
    :param connection_state_recovery: None, True or
        ``dict(max_disconnection_duration=120.0)``.
    :param write_only: an emitter for a process that is not a server.
    :param buffer_size: packets held, in order, while Redis is unreachable;
        beyond that ``emit`` raises :class:`BufferFullError`.
    :param logger: a ``logging.Logger``; ``socketio_streams`` by default.
    :param redis_options: keyword arguments for the clients built from url.
    """

    name = 'redis-streams'

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
        super().__init__()
        self.options = Options(**options)
        self.logger = self.options.logger
        self.write_only = self.options.write_only
        self._connector = Connector(url, client, redis_options)
        self._runtime = Runtime()
        self._new_process()
        self._dedup = Dedup()
        self._skip_log = Throttle()
        self._remote_acks = AckExpiry(MAX_REMOTE_ACKS)
        self._handlers_by_event: dict[tuple[str, str], Callable] = {}
        self._connections: dict[tuple[str, str], tuple[float, Any]] = {}
        self._auth: dict[tuple[str, str], Any] = {}
        self._recovery = Recovery(self._connector, self.options, self._log) \
            if self.options.connection_state_recovery else None
        self._pids: dict[tuple[str, str], str] = {}
        self._sessions: dict[tuple[str, str], dict] = {}
        self._restoring: dict[tuple[str, str], list] = {}
        self._replayed: dict[tuple[str, str], str] = {}
        self._reasons: dict[tuple[str, str], str] = {}
        self._starts: dict[str, dict[str, tuple[int, int]]] = {}
        self._decided: dict[str, tuple[int, int]] = {}
        self._closed = False
        self._pin_failed_at = -PIN_RETRY_AFTER
        _open_managers.add(self)

    def _new_process(self) -> None:
        """What each process has of its own: an identity among the
        servers, tasks, locks. Called again in a child after ``fork()``
        (gunicorn ``--preload``): the parent's tasks did not come along,
        what it queued is its own to send, and two processes sharing a
        uid would take each other's packets for their own and drop them.
        The child starts listening again at its first connection."""
        self.uid = secrets.token_hex(8)
        #: how python-socketio's Admin UI tells servers apart
        self.host_id = self.uid
        self._stats = Stats()
        self._requests = Requests(self._connector, self.options, self.uid)
        self._publisher: Publisher | None = None
        self._readers: dict[str, StreamReader] = {}
        self._subscriber: Subscriber | None = None
        self._watched: set[str] = set()
        self._listening = False
        self._restore_lock = threading.Lock()
        self._decide_lock = threading.Lock()
        self._lock = threading.RLock()

    # --- life cycle ----------------------------------------------------------

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        self._runtime = Runtime(server)
        self._hook_connect(server)
        self._hook_shutdown(server)
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
        if self._listening or (self.server is None and not self.write_only):
            return
        try:
            check_patched(self._runtime.async_mode)
        except RuntimeError:
            return
        self._listen()

    def _hook_shutdown(self, server: Any) -> None:
        """``server.shutdown()`` closes the manager too (python-socketio
        gives its manager no hook): its tasks do not outlive the server."""
        original = server.shutdown

        @functools.wraps(original)
        def shutdown(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            finally:
                self.close()

        server.shutdown = shutdown

    def _hook_connect(self, server: Any) -> None:
        """See the CONNECT packet's auth, which python-socketio does not
        give its manager (``fetch_sockets`` reports it as Node does)."""
        original = server._handle_connect

        @functools.wraps(original)
        def handle_connect(eio_sid, namespace, data):
            key = (eio_sid, namespace or '/')
            self._auth[key] = data
            try:
                return original(eio_sid, namespace, data)
            finally:
                self._auth.pop(key, None)

        server._handle_connect = handle_connect
        if self._recovery is not None:
            self._hook_recovery(server)

    def _hook_recovery(self, server: Any) -> None:
        """Connection state recovery needs three things python-socketio
        does not offer a manager: the CONNECT auth (``pid``, ``offset``),
        the ``pid`` in the CONNECT reply, and the disconnection reason."""
        handle_connect, send_packet = server._handle_connect, \
            server._send_packet
        handle_disconnect = server._handle_disconnect

        def connect_hook(eio_sid, namespace, data):
            namespace = namespace or '/'
            if isinstance(data, dict) and 'pid' in data:
                session = self._take_session(data.get('pid'),
                                             data.get('offset'), namespace)
                if session is not None:
                    self._sessions[(eio_sid, namespace)] = session
            try:
                return handle_connect(eio_sid, namespace, data)
            finally:
                self._sessions.pop((eio_sid, namespace), None)

        def send_hook(eio_sid, pkt):
            if pkt.packet_type == sio_packet.CONNECT and isinstance(
                    pkt.data, dict) and 'sid' in pkt.data:
                pid = self._pids.get((pkt.namespace or '/', pkt.data['sid']))
                if pid is not None:
                    pkt.data = {**pkt.data, 'pid': pid}
            return send_packet(eio_sid, pkt)

        def disconnect_hook(eio_sid, namespace, reason=None):
            key = (eio_sid, namespace or '/')
            self._reasons[key] = reason
            try:
                return handle_disconnect(eio_sid, namespace, reason)
            finally:
                self._reasons.pop(key, None)

        server._handle_connect = connect_hook
        server._send_packet = send_hook
        server._handle_disconnect = disconnect_hook

    def initialize(self) -> None:
        """Called by the server before its first connection."""
        super().initialize()
        check_patched(self._runtime.async_mode)
        self._start_publisher()
        if not self.write_only:
            self._listen()
        self._log.info('%s backend initialized (%s)', self.name,
                       self._connector.describe())

    def _start_publisher(self) -> Publisher:
        """The publisher, started at first use; once closed, one that
        drops what it is given (see ``close``)."""
        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(self._connector, self._runtime,
                                            self.options, self._stats,
                                            self._log)
                if self._closed:
                    self._publisher.closed = True
                else:
                    self._publisher.start()
            return self._publisher

    def _listen(self) -> None:
        """Start the subscriber and a reader per namespace's stream;
        every caller waits (bounded) for the subscriptions, since its
        request's answers come on them."""
        with self._lock:
            if self._closed:
                return
            if not self._listening:
                self._listening = True
                self._subscriber = Subscriber(
                    self._connector, self._runtime, self.options,
                    self._stats, self._log, self._on_pubsub)
                self._subscriber.start()
                for namespace in self._known_namespaces():
                    self._watch(namespace, wait=False)
            subscriber = self._subscriber
        if subscriber is not None:
            subscriber.wait_subscribed(SUBSCRIBE_WAIT)

    def _known_namespaces(self) -> set[str]:
        server = self.server
        names = {'/'} | set(getattr(server, 'handlers', {}))
        names |= {namespace for namespace, _ in self._handlers_by_event}
        names |= set(getattr(server, 'namespace_handlers', {}))
        if isinstance(getattr(server, 'namespaces', None), list):
            names |= set(server.namespaces)
        return {n for n in names if isinstance(n, str) and n != '*'}

    def _watch(self, namespace: str, wait: bool = True) -> None:
        """Subscribe to the namespace's channels and tail its stream.

        The first connection to a namespace waits here, before python-
        socketio accepts it, for what correctness needs: the reader's start
        fixed (``_pin``), so that what other servers broadcast after the
        client was accepted reaches it; and the SUBSCRIBE sent, so that
        their requests (``fetch_sockets``, acks) made after it see it. Each
        wait is bounded (``PIN_TIMEOUT``, ``SUBSCRIBE_WAIT``) and skipped
        while Redis is failing: a frozen Redis holds a connection 1.5 s
        at most, and only the first."""
        subscriber = self._subscriber
        with self._lock:
            if namespace in self._watched or subscriber is None or \
                    self._closed:
                return
            self._watched.add(namespace)
            opts = self.options
            subscriber.add(
                protocol.public_channel(opts.channel_prefix, namespace),
                protocol.private_channel(opts.channel_prefix, namespace,
                                         self.uid))
            key = self._stream(namespace)
            if key not in self._readers:
                reader = StreamReader(key, self._connector, self._runtime,
                                      opts, self._stats, self._log,
                                      self._on_entry)
                self._readers[key] = reader
                self._pin(reader)
                reader.start()
        if wait:
            subscriber.wait_subscribed(SUBSCRIBE_WAIT)

    def _pin(self, reader: StreamReader) -> None:
        """Fix the reader's start at the stream's end now, so that what is
        written after this server accepted a client reaches it (Node keeps
        reading from ``$`` until a first entry arrives and may miss some).
        If Redis does not answer within ``PIN_TIMEOUT`` (or did not, less
        than ``PIN_RETRY_AFTER`` s ago), the reader starts at entries
        written from now on by this host's clock."""
        if time.monotonic() - self._pin_failed_at < PIN_RETRY_AFTER:
            reader.last_id = f'{int(time.time() * 1000)}-0'
            return
        try:
            reader.pin(PIN_TIMEOUT)
        except Exception as exc:
            self._pin_failed_at = time.monotonic()
            self._log.warning('cannot reach Redis %s yet (%s: %s); reading '
                              'from now on by the clock, will keep trying',
                              self._connector.describe(),
                              type(exc).__name__, exc)

    def close(self, timeout: float = 5.0) -> None:
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
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _open_managers.discard(self)
        deadline = time.monotonic() + timeout
        tasks = [t for t in [*self._readers.values(), self._subscriber]
                 if t is not None]
        if self._publisher is not None:
            self._publisher.close(timeout)
        for task in tasks:
            task.stop()
        self._requests.close()
        for task in tasks:
            task.join(max(deadline - time.monotonic(), 0.1))
        self._connector.close(self._log.debug)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued is in Redis, and handled (with
        recovery on, delivered to this server's clients); False on
        timeout. The way for a test to wait before looking at what its
        clients received (Flask-SocketIO's ``test_client``)."""
        return self._publisher is None or self._publisher.flush(timeout)

    def stats(self) -> dict:
        """Counters: published, delivered, buffered, reconnects, gaps,
        duplicates, skipped (bad input), errors, buffer_full, resent; and
        ``lag``: entries in the streams not read yet (0 when caught up)."""
        snapshot = self._stats.snapshot()
        snapshot['buffered'] = self._publisher.buffered \
            if self._publisher else 0
        snapshot['lag'] = self._lag()
        snapshot['pending_requests'] = len(self._requests)
        snapshot['healthy'] = self.healthy()
        return snapshot

    def healthy(self) -> bool:
        """True while the publisher and readers are connected and keeping
        up: the readers less than ``max_len / 2`` entries behind (further,
        trimming is about to remove entries they have not read), and no
        stream they were reading has vanished."""
        if self._closed:
            return False
        publisher_ok = self._publisher is None or not self._publisher.failures
        tasks: list[Any] = [*self._readers.values()]
        if self._subscriber is not None:
            tasks.append(self._subscriber)
        return publisher_ok and all(t.failures == 0 for t in tasks) and \
            not any(r.trouble for r in list(self._readers.values())) and \
            self._lag() < self.options.max_len / 2

    def _lag(self) -> int:
        return sum(reader.lag for reader in list(self._readers.values()))

    @property
    def _log(self):
        """Our own logger by default, not the server's: python-socketio
        silences its logger below ERROR unless ``logger=True``, and a lost
        Redis connection must not go unreported."""
        return self.logger or default_logger()

    def _stream(self, namespace: str) -> str:
        return protocol.stream_key(self.options.stream_name,
                                   self.options.stream_count, namespace)

    # --- python-socketio hooks -----------------------------------------------

    def pre_connect(self, eio_sid, namespace):
        self._watch(namespace)
        session = self._sessions.pop((eio_sid, namespace), None)
        sid = self._pre_restore(eio_sid, namespace, session) \
            if session else None
        if sid is None:
            sid = self._register(eio_sid, namespace)
        if sid is not None:
            self._connections[(namespace, sid)] = (
                time.time(), self._auth.get((eio_sid, namespace)))
            if self._recovery is not None:
                self._pids.setdefault((namespace, sid),
                                      self.server.eio.generate_id())
        return sid

    def connect(self, sid, namespace):
        sid = super().connect(sid, namespace)
        if (namespace, sid) in self._restoring:
            self._replay(sid, namespace)
        return sid

    def disconnect(self, sid, namespace, **kwargs):
        key = (namespace, sid)
        if self._recovery is not None and self._reasons.get(
                (self.eio_sid_from_sid(sid, namespace), namespace)) \
                in RECOVERABLE:
            self._persist(sid, namespace)
        for table in (self._connections, self._pids, self._replayed,
                      self._restoring):
            table.pop(key, None)
        self._starts.get(namespace, {}).pop(sid, None)
        return super().disconnect(sid, namespace, **kwargs)

    def is_recovered(self, sid: str, namespace: str = '/') -> bool:
        """True if this connection restored a previous session."""
        return (namespace, sid) in self._replayed

    # --- connection state recovery -------------------------------------------

    def _register(self, eio_sid: str, namespace: str) -> str | None:
        """A new socket. With recovery on, note where the namespace's
        stream stood when it joined: every broadcast after that reaches
        it (or is replayed to it), none before; under the lock in which
        deliveries choose their targets, so none is on both sides."""
        if self._recovery is None:
            return super().pre_connect(eio_sid, namespace)
        with self._decide_lock:
            sid = super().pre_connect(eio_sid, namespace)
            start = self._position(namespace)
            if sid is not None and start is not None:
                self._starts.setdefault(namespace, {})[sid] = start
        return sid

    def _position(self, namespace: str) -> tuple[int, int] | None:
        """The last entry of the namespace's stream whose targets were
        chosen, or that is on its way to them: the reader's last entry
        (set before it handles it) or the last local emit delivered."""
        reader = self._readers.get(self._stream(namespace))
        read = reader.last_id if reader is not None else None
        known = [protocol.offset_key(read)] if read else []
        if namespace in self._decided:
            known.append(self._decided[namespace])
        return max(known) if known else None

    def _take_session(self, pid: Any, offset: Any,
                      namespace: str) -> dict | None:
        try:
            return self._recovery.take(pid, offset, self._stream(namespace)) \
                if self._recovery else None
        except Exception as exc:  # Redis unreachable: a fresh session
            self._log.warning('cannot restore session %r: %r', pid, exc)
            return None

    def _pre_restore(self, eio_sid: str, namespace: str,
                     session: dict) -> str | None:
        """Register the socket under its old sid and rooms; live packets
        for it wait in a buffer until the missed ones are replayed."""
        sid = session['sid']
        if self.eio_sid_from_sid(sid, namespace) is not None:
            return None  # the old connection is still here: start afresh
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:
            return None
        with self._restore_lock:
            self._restoring[(namespace, sid)] = [session]
        for room in [sid, *session['rooms']]:
            if room == sid or not self.is_sid_room(namespace, room):
                self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, []).append(sid)
        if isinstance(session.get('data'), dict):
            self.server.eio.get_session(eio_sid)[namespace] = session['data']
        self._pids[(namespace, sid)] = session['pid']
        return sid

    def _replay(self, sid: str, namespace: str) -> None:
        """Send what the client missed, then what arrived meanwhile."""
        session = self._restoring[(namespace, sid)][0]
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        last, complete, sent = session['offset'], False, 0
        seen = Dedup()
        recovery = self._recovery
        try:
            for entry_id, fields in recovery.backlog(  # type: ignore
                    self._stream(namespace), last):
                last = entry_id
                event_data = self._missed(fields, namespace, session, seen)
                if event_data is None:
                    continue
                try:
                    self._send_event(eio_sid, namespace,
                                     [*event_data, entry_id])
                    sent += 1
                except ProtocolError as exc:
                    self._skip(f'backlog entry {entry_id}', exc)
            complete = True
        except Exception as exc:  # Hole, Redis, or a bug: never stranded
            self._log.warning('recovery of %s (%s) incomplete: %s; closing '
                              'its connection so it starts afresh', sid,
                              namespace, exc)
        with self._restore_lock:
            # gone if the socket disconnected during the replay
            buffered = self._restoring.pop((namespace, sid), [None])[1:]
            self._replayed[(namespace, sid)] = last
        for offset, eio_pkts in buffered:
            if offset is None or protocol.compare_offsets(offset, last) > 0:
                for p in eio_pkts:
                    self.server._send_eio_packet(eio_sid, p)
        self._stats.incr('delivered', sent)
        if not complete:
            self._runtime.start(self.server.eio.disconnect, eio_sid)

    def _missed(self, fields: Any, namespace: str, session: dict,
                seen: Dedup) -> list | None:
        """``[event, *args]`` of a stream entry the session should get
        again, else None (other namespace, room, volatile, a duplicate)."""
        try:
            message = protocol.decode_entry(fields)
            if message.nsp != namespace or message.type != T.BROADCAST or \
                    protocol.request_id(message.data) is not None:
                return None
            if seen.is_copy('', message.uid, message.seq,
                            protocol.raw_field(fields, 'data')):
                return None
            event_data = protocol.parse_event(message.data)
            opts = protocol.parse_opts(message.data)
        except ProtocolError as exc:
            self._skip('an entry of a recovery backlog', exc)
            return None
        if 'volatile' in opts[2] or not protocol.should_include(
                session['rooms'], opts):
            return None
        return event_data

    def _persist(self, sid: str, namespace: str) -> None:
        """Keep a dropped client's session for ``max_disconnection_duration``
        (queued like an emit: an outage does not lose it)."""
        pid = self._pids.get((namespace, sid))
        if pid is None or self._recovery is None:
            return
        start = self._starts.get(namespace, {}).get(sid)
        offset = self._replayed.get((namespace, sid)) or (
            '%d-%d' % start if start else None)
        try:
            value = protocol.encode_session(
                sid, pid, self.get_rooms(sid, namespace),
                self._session(sid, namespace), offset)
        except TypeError as exc:
            self._log.warning('session of %s cannot be stored for recovery: '
                              '%s', sid, exc)
            return
        self._start_publisher().put(Item(
            'set', self._recovery.key(pid), (value, self._recovery.ttl_ms)))

    def emit(self, event: str, data: Any, namespace: str | None = None,
             room: Any = None, skip_sid: Any = None,
             callback: Callable | None = None, to: Any = None,
             **kwargs: Any) -> None:
        """Emit to clients on every server; same arguments as
        ``socketio.Server.emit``. Queues the packet and returns: it never
        waits for Redis (unless the buffer is full, see ``buffer_size``).

        This server's own clients get it at once; with connection state
        recovery on, they get it with its stream offset, so only once
        Redis has stored it (one round trip; during an outage, when Redis
        is back, in order, as the other servers' clients do):
        ``flush()`` waits for that. After ``close()``, local only."""
        room = to if to is not None else room
        namespace = _namespace(namespace)
        if kwargs.get('ignore_queue'):
            return super().emit(event, data, namespace, room=room,
                                skip_sid=skip_sid, callback=callback)
        _check_event(event)
        event_data = [event, *_args(data)]
        if callback is not None:
            return self._emit_with_callback(event, data, event_data,
                                            namespace, room, skip_sid,
                                            callback)
        opts = protocol.make_opts(room, skip_sid)
        deliver = functools.partial(self._deliver, namespace, event_data,
                                    opts['rooms'], opts['except'])
        if self._recovery is not None and self.server is not None and \
                not self._closed:
            # every client gets the stream offset: wait for the XADD reply
            self._publish(namespace, T.BROADCAST,
                          protocol.broadcast_data(event_data, opts),
                          on_written=lambda entry_id: deliver(
                              offset=_text(entry_id)))
            return
        self._publish(namespace, T.BROADCAST,
                      protocol.broadcast_data(event_data, opts))
        deliver()

    def _emit_with_callback(self, event, data, event_data, namespace, room,
                            skip_sid, callback) -> None:
        protocol.make_opts(room, skip_sid)  # TypeError before anything
        if isinstance(room, str) and self._is_local(room, namespace):
            return super().emit(event, data, namespace, room=room,
                                skip_sid=skip_sid, callback=callback)
        if self.server is None:
            raise RuntimeError('Callbacks can only be issued from the '
                               'context of a server.')
        self._listen()
        request_id = new_request_id()
        self._requests.add(request_id, ClientAcks(
            callback, time.monotonic() + CALLBACK_TTL,
            single=isinstance(room, str)))
        opts = protocol.make_opts(room, skip_sid)
        self._publish(namespace, T.BROADCAST, protocol.broadcast_data(
            event_data, opts, request_id))
        if not isinstance(room, str):  # local members too (all if None)
            super().emit(event, data, namespace, room=room,
                         skip_sid=skip_sid, callback=callback)

    def enter_room(self, sid, namespace, room, eio_sid=None):
        namespace = self._room_call(sid, namespace, room)
        if self._is_local(sid, namespace):
            return super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._publish(namespace, T.SOCKETS_JOIN,
                      {'opts': protocol.make_opts(sid), 'rooms': [room]})

    def leave_room(self, sid, namespace, room):
        namespace = self._room_call(sid, namespace, room)
        if self._is_local(sid, namespace):
            return super().leave_room(sid, namespace, room)
        self._publish(namespace, T.SOCKETS_LEAVE,
                      {'opts': protocol.make_opts(sid), 'rooms': [room]})

    def close_room(self, room, namespace):
        namespace = _namespace(namespace)
        protocol.room_list(room)
        self._publish(namespace, T.SOCKETS_LEAVE,
                      {'opts': protocol.make_opts(room), 'rooms': [room]})
        return super().close_room(room, namespace)

    def can_disconnect(self, sid, namespace):
        namespace = _namespace(namespace)
        if self._is_local(sid, namespace):
            return super().can_disconnect(sid, namespace)
        self._publish(namespace, T.DISCONNECT_SOCKETS,
                      {'opts': protocol.make_opts(sid), 'close': False})
        return False

    def _room_call(self, sid: Any, namespace: Any, room: Any) -> str:
        """Check the arguments of enter_room/leave_room as python-socketio
        would (ValueError for a sid of this server that is not in the
        namespace), and that the room can cross servers (a str)."""
        namespace = _namespace(namespace)
        if not isinstance(sid, str):
            raise TypeError(f'sid must be a str, got {sid!r}')
        if not isinstance(room, str):
            raise TypeError(f'room must be a str, got {room!r}')
        if not self._is_local(sid, namespace) and any(
                sid in rooms.get(None, ()) for rooms in self.rooms.values()):
            raise ValueError('sid is not connected to requested namespace')
        return namespace

    # --- cluster-wide operations ---------------------------------------------

    def fetch_sockets(self, to: Any = None, skip_sid: Any = None,
                      namespace: str = '/',
                      timeout: float = 5.0) -> list[RemoteSocket]:
        """The matching sockets of every server (``to``: room(s), None for
        all; ``skip_sid``: room(s)/sid(s) to leave out). Raises
        :class:`AckTimeoutError` (``.responses``: the sockets found) if a
        live server did not answer within ``timeout`` seconds."""
        namespace = _namespace(namespace)
        opts = protocol.make_opts(to, skip_sid)
        found = [RemoteSocket(self, namespace, info) for info in
                 self._local_sockets(namespace, opts)]
        request_id, request = self._request(namespace, Request, timeout)
        self._publish(namespace, T.FETCH_SOCKETS,
                      {'opts': opts, 'requestId': request_id})

        def sockets(req: Request) -> list[RemoteSocket]:
            return found + [RemoteSocket(self, namespace, info)
                            for infos in req.answers.values()
                            for info in infos]

        self._requests.wait(namespace, request_id, request, timeout,
                            'fetch_sockets', sockets)
        return sockets(request)

    def sockets_join(self, rooms: Any, to: Any = None, skip_sid: Any = None,
                     namespace: str = '/') -> None:
        """Make the matching sockets of every server join ``rooms``."""
        self._rooms_op(T.SOCKETS_JOIN, rooms, to, skip_sid, namespace)

    def sockets_leave(self, rooms: Any, to: Any = None, skip_sid: Any = None,
                      namespace: str = '/') -> None:
        """Make the matching sockets of every server leave ``rooms``."""
        self._rooms_op(T.SOCKETS_LEAVE, rooms, to, skip_sid, namespace)

    def _rooms_op(self, type_, rooms, to, skip_sid, namespace) -> None:
        namespace = _namespace(namespace)
        message = Message(type_, {'opts': protocol.make_opts(to, skip_sid),
                                  'rooms': protocol.room_list(rooms,
                                                              'rooms')},
                          self.uid, namespace)
        self._publish(namespace, type_, message.data)
        self._dispatch(message, 'local room operation')

    def disconnect_sockets(self, to: Any = None, skip_sid: Any = None,
                           close: bool = False, namespace: str = '/') -> None:
        """Disconnect the matching sockets of every server from the
        namespace (``close=True``: close their whole connection)."""
        namespace = _namespace(namespace)
        message = Message(T.DISCONNECT_SOCKETS, {
            'opts': protocol.make_opts(to, skip_sid), 'close': bool(close)},
            self.uid, namespace)
        self._publish(namespace, T.DISCONNECT_SOCKETS, message.data)
        self._dispatch(message, 'local disconnect')

    def emit_with_ack(self, event: str, data: Any = None, to: Any = None,
                      skip_sid: Any = None, namespace: str = '/',
                      timeout: float = 5.0) -> list:
        """Broadcast and wait for every client of every server to answer;
        returns the answers. Raises :class:`AckTimeoutError` (``.responses``:
        the answers that came) after ``timeout`` seconds."""
        if self.server is None:
            raise RuntimeError('emit_with_ack needs a server, not write_only')
        namespace = _namespace(namespace)
        _check_event(event)
        event_data = [event, *_args(data)]
        opts = protocol.make_opts(to, skip_sid,
                                  {'timeout': int(timeout * 1000)})
        request_id, request = self._request(namespace, BroadcastAcks,
                                            timeout)
        self._publish(namespace, T.BROADCAST, protocol.broadcast_data(
            event_data, opts, request_id))
        targets = self._targets(namespace, opts['rooms'], opts['except'])
        request.on_count(SELF, len(targets))
        self._send_with_acks(namespace, event_data, targets,
                             lambda *args: request.on_ack(SELF, list(args)))
        self._requests.wait(namespace, request_id, request, timeout,
                            'emit_with_ack', lambda r: list(r.acks))
        return list(request.acks)

    def on(self, event: str, handler: Callable | None = None,
           namespace: str = '/') -> Any:
        """Register a handler for ``server_side_emit`` events from other
        servers; its return value answers an emit with a callback. Usable
        as ``mgr.on(event, handler)`` or as a decorator ``@mgr.on(event)``.
        """
        namespace = _namespace(namespace)
        _check_event(event)

        def register(func: Callable) -> Callable:
            self._handlers_by_event[(namespace, event)] = func
            self._listen_early()
            self._watch(namespace)
            return func
        return register(handler) if handler is not None else register

    def server_side_emit(self, event: str, *args: Any, namespace: str = '/',
                         callback: Callable | None = None,
                         timeout: float = 5.0) -> None:
        """Send an event to every *other* server's ``@mgr.on`` handlers.

        With ``callback(err, responses)``, each server's answer comes back;
        ``err`` is an :class:`AckTimeoutError` if one did not answer in
        ``timeout`` seconds (``responses`` then holds those that did). The
        wait runs in a background task: this call does not block."""
        namespace = _namespace(namespace)
        _check_event(event)
        packet = [event, *args]
        if callback is None:
            self._publish(namespace, T.SERVER_SIDE_EMIT, {'packet': packet})
            return
        if self.write_only:
            raise RuntimeError('a write_only manager cannot receive answers')
        request_id, request = self._request(namespace, Request, timeout)
        self._publish(namespace, T.SERVER_SIDE_EMIT,
                      {'requestId': request_id, 'packet': packet})

        def wait() -> None:
            try:
                answers = self._requests.wait(
                    namespace, request_id, request, timeout,
                    'server_side_emit', lambda r: list(r.answers.values()))
            except AckTimeoutError as exc:
                return callback(exc, exc.responses)
            callback(None, list(answers.values()))

        self._runtime.start(wait)

    def server_count(self, namespace: str = '/') -> int:
        """Live servers of the namespace (subscribers of its public
        channel, as Node counts them; summed over a cluster's nodes). A
        write_only emitter that made requests listens too, but is not a
        server: it does not count itself."""
        namespace = _namespace(namespace)
        count = self._requests.server_count(namespace)
        if self.options.write_only and namespace in self._watched:
            count -= 1
        return max(count, 0)

    def _request(self, namespace: str, kind: type,
                 timeout: float) -> tuple[str, Any]:
        """Listen (the answers come on our private channel), then open a
        request."""
        if self._closed:
            raise RuntimeError('the manager is closed')
        self._listen()
        self._watch(namespace)
        return self._requests.open(namespace, kind, timeout,
                                   self._runtime.event())

    def _local_sockets(self, namespace: str, opts: dict) -> list[dict]:
        """Node's socket descriptions of the matching local sockets."""
        result = []
        for sid, eio_sid in self._targets(namespace, opts['rooms'],
                                          opts['except']):
            connected_at, auth = self._connections.get(
                (namespace, sid), (time.time(), None))
            result.append({
                'id': sid,
                'handshake': handshake(self.server.environ.get(eio_sid, {}),
                                       auth, connected_at),
                'rooms': [sid, *(r for r in self.get_rooms(sid, namespace)
                                 if r != sid)],
                'data': self._session(sid, namespace)})
        return result

    def _session(self, sid: str, namespace: str) -> Any:
        try:
            return self.server.get_session(sid, namespace=namespace)
        except Exception:  # e.g. a socket that is leaving
            return {}

    def _is_local(self, sid, namespace) -> bool:
        return self.is_connected(sid, namespace) or \
            self.is_pre_connected(sid, namespace)

    # --- sending -------------------------------------------------------------

    def _publish(self, namespace: str, type_: int, data: Any,
                 on_written: Callable | None = None) -> None:
        """Queue a message: stream-borne types to the namespace's stream,
        requests (BROADCAST with ack, FETCH_SOCKETS, SERVER_SIDE_EMIT) to
        its public channel, as Node's ``isEphemeral`` decides."""
        publisher = self._start_publisher()
        message = Message(type=type_, data=data, uid=self.uid, nsp=namespace)
        ephemeral = type_ in (T.FETCH_SOCKETS, T.SERVER_SIDE_EMIT) or (
            type_ == T.BROADCAST and 'requestId' in data)
        if ephemeral:
            self._send_pubsub(protocol.public_channel(
                self.options.channel_prefix, namespace), message)
            return
        fields = protocol.encode_entry(message, self.options.only_plaintext)
        publisher.put(Item('xadd', self._stream(namespace), fields,
                           on_written))

    def _send_pubsub(self, channel: str, message: Message) -> None:
        kind = 'spublish' if self.options.use_sharded_pubsub else 'publish'
        self._start_publisher().put(
            Item(kind, channel, protocol.encode_pubsub(message)))

    def _respond(self, request: Message, type_: int, data: dict) -> None:
        """Answer a request on the requester's private channel."""
        self._send_pubsub(
            protocol.private_channel(self.options.channel_prefix,
                                     request.nsp, request.uid),
            Message(type=type_, data=data, uid=self.uid, nsp=request.nsp))

    # --- local delivery ------------------------------------------------------

    def _targets(self, namespace: str, rooms: list,
                 except_rooms: list) -> list[tuple[str, str]]:
        """``(sid, eio_sid)`` of local sockets in any of ``rooms`` (all if
        empty) and in none of ``except_rooms``."""
        if self.server is None or namespace not in self.rooms:
            return []
        targets = dict(self.get_participants(namespace, rooms or None))
        for room in except_rooms:
            for sid, _ in self.get_participants(namespace, room):
                targets.pop(sid, None)
        return list(targets.items())

    def _deliver(self, namespace: str, event_data: list, rooms: list,
                 except_rooms: list, offset: str | None = None) -> int:
        """Send an EVENT to the matching local sockets; returns how many.
        With recovery on, ``offset`` (the stream entry ID) is appended as
        the last argument, as Node does; a socket being restored gets it
        after its missed packets, one restored gets nothing twice, one
        that joined after the entry reached the stream gets nothing."""
        at = None
        if offset is not None and self._recovery is not None:
            at = protocol.offset_key(offset)
            with self._decide_lock:
                if at > self._decided.get(namespace, protocol.BEFORE):
                    self._decided[namespace] = at
                targets = self._targets(namespace, rooms, except_rooms)
            event_data = [*event_data, offset]
        else:
            targets = self._targets(namespace, rooms, except_rooms)
        if not targets:
            return 0
        eio_pkts = self._encode(namespace, event_data)
        sent = 0
        starts = self._starts.get(namespace, {}) if at is not None else {}
        for sid, eio_sid in targets:
            if at is not None and at <= starts.get(sid, protocol.BEFORE):
                continue
            if self._restoring or self._replayed:
                if self._held(namespace, sid, offset, eio_pkts):
                    continue
            for p in eio_pkts:
                self.server._send_eio_packet(eio_sid, p)
            sent += 1
        self._stats.incr('delivered', sent)
        return sent

    def _held(self, namespace: str, sid: str, offset: str | None,
              eio_pkts: list) -> bool:
        """True if a recovering socket must not get this packet now."""
        key = (namespace, sid)
        with self._restore_lock:
            restoring = self._restoring.get(key)
            if restoring is not None:
                restoring.append((offset, eio_pkts))
                return True
            until = self._replayed.get(key)
        return offset is not None and until is not None and \
            protocol.compare_offsets(offset, until) <= 0

    def _encode(self, namespace: str, event_data: list) -> list:
        """An EVENT as Engine.IO packets (more than one with binary)."""
        pkt = self.server.packet_class(sio_packet.EVENT, namespace=namespace,
                                       data=event_data)
        try:
            encoded = pkt.encode()
        except (TypeError, ValueError, RecursionError) as exc:
            # decodable from Redis, yet not for clients (a map with binary
            # keys, nesting too deep to encode again)
            raise ProtocolError(f'event cannot be sent to clients: '
                                f'{type(exc).__name__}: {exc}') from None
        if not isinstance(encoded, list):
            encoded = [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]

    def _send_event(self, eio_sid: str, namespace: str,
                    event_data: list) -> None:
        for p in self._encode(namespace, event_data):
            self.server._send_eio_packet(eio_sid, p)

    # --- receiving -----------------------------------------------------------

    def _on_entry(self, key: str, entry_id: str, fields: Any) -> None:
        """A stream entry from a reader."""
        try:
            if protocol.field_text(fields, 'uid') == self.uid:
                return  # our own: delivered locally when it was emitted
            message = protocol.decode_entry(fields)
        except ProtocolError as exc:
            return self._skip(f'stream entry {entry_id} of {key!r}', exc)
        if self._dedup.is_copy(key, message.uid, message.seq,
                               protocol.raw_field(fields, 'data')):
            self._stats.incr('duplicates')
            return
        message.offset = entry_id
        self._dispatch(message, f'stream entry {entry_id} of {key!r}')

    def _on_pubsub(self, channel: str, payload: Any) -> None:
        """A PUB/SUB message from the subscriber."""
        try:
            message = protocol.decode_pubsub(payload)
        except ProtocolError as exc:
            return self._skip(f'PUB/SUB message on {channel!r}', exc)
        if message.uid != self.uid:
            self._dispatch(message, f'PUB/SUB message on {channel!r}')

    def _skip(self, what: str, exc: Exception) -> None:
        """Count bad input and log it in one line (a flood, in a few)."""
        self._stats.incr('skipped')
        allowed, held = self._skip_log.allow(time.monotonic())
        if allowed:
            self._log.warning('skipping %s: %s%s', what, str(exc)[:300],
                              f' ({held} more skipped before it, not '
                              f'logged)' if held else '')

    def _dispatch(self, message: Message, what: str) -> None:
        handler = self._handlers.get(message.type)
        if handler is None:
            return self._log.debug('ignoring %s of type %s', what,
                                   message.type)
        if not isinstance(message.data, dict):  # every handled type's is
            return self._skip(what, ProtocolError(
                f'message of type {message.type} has no data map'))
        try:
            handler(self, message)
        except ProtocolError as exc:
            self._skip(what, exc)
        except Exception:
            self._stats.incr('errors')
            self._log.exception('error handling %s', what)

    def _on_broadcast(self, message: Message) -> None:
        event_data = protocol.parse_event(message.data)
        rooms, except_rooms, flags = protocol.parse_opts(message.data)
        request_id = protocol.request_id(message.data)
        if request_id is None:
            self._deliver(message.nsp, event_data, rooms, except_rooms,
                          None if 'volatile' in flags else message.offset)
            return
        targets = self._targets(message.nsp, rooms, except_rooms)
        self._respond(message, T.BROADCAST_CLIENT_COUNT,
                      {'requestId': request_id, 'clientCount': len(targets)})
        self._send_with_acks(message.nsp, event_data, targets,
                             functools.partial(self._send_ack, message,
                                               request_id),
                             time.monotonic() + _ack_ttl(flags))

    def _send_with_acks(self, namespace: str, event_data: list,
                        targets: list, ack: Callable,
                        expires: float | None = None) -> None:
        """Send an EVENT with an ack id to each target. ``expires``: the
        ids are forgotten then (answers for another server's request: if
        its clients never answer, the table must not grow)."""
        if targets:
            self._encode(namespace, event_data)  # ProtocolError if it can't
        for sid, eio_sid in targets:
            ack_id = self._generate_ack_id(sid, ack)
            if expires is not None:
                self._remote_acks.add(expires, sid, ack_id)
            pkt = self.server.packet_class(
                sio_packet.EVENT, namespace=namespace, data=event_data,
                id=ack_id)
            self.server._send_packet(eio_sid, pkt)
        self._stats.incr('delivered', len(targets))
        for sid, ack_id in self._remote_acks.due(time.monotonic()):
            self.callbacks.get(sid, {}).pop(ack_id, None)

    def _send_ack(self, request: Message, request_id: str, *args: Any):
        data: dict = {'requestId': request_id,
                      'packet': args[0] if args else None}
        if len(args) != 1:  # Node keeps the first argument only
            data['args'] = list(args)
        self._respond(request, T.BROADCAST_ACK, data)

    def _on_broadcast_ack(self, message: Message) -> None:
        request = self._requests.answered(message)
        if request is None:
            return
        args = message.data.get('args')
        if not isinstance(args, list):
            args = [message.data.get('packet')]
        if request.on_ack(message.uid, args):
            self._requests.discard(message.data['requestId'])

    def _on_client_count(self, message: Message) -> None:
        request = self._requests.answered(message)
        count = message.data.get('clientCount')
        if request is not None and isinstance(count, int):
            if request.on_count(message.uid, count):
                self._requests.discard(message.data['requestId'])

    def _on_fetch_sockets(self, message: Message) -> None:
        request_id = protocol.request_id(message.data)
        rooms, except_rooms, flags = protocol.parse_opts(message.data)
        sockets = self._local_sockets(message.nsp, {
            'rooms': rooms, 'except': except_rooms})
        self._respond(message, T.FETCH_SOCKETS_RESPONSE,
                      {'requestId': request_id, 'sockets': sockets})

    def _on_fetch_response(self, message: Message) -> None:
        request = self._requests.answered(message)
        sockets = message.data.get('sockets')
        if request is not None and isinstance(sockets, list):
            request.on_answer(message.uid, [
                s for s in sockets if isinstance(s, dict)
                and isinstance(s.get('id'), str)])

    def _on_server_side_emit(self, message: Message) -> None:
        packet = message.data.get('packet') \
            if isinstance(message.data, dict) else None
        if not isinstance(packet, list) or not packet or \
                not isinstance(packet[0], str):
            raise ProtocolError('server-side emit packet is not [event, ...]')
        request_id = protocol.request_id(message.data)
        handler = self._handlers_by_event.get((message.nsp, packet[0]))
        if handler is None:
            if request_id is not None:  # Node's callers wait for every server
                self._respond(message, T.SERVER_SIDE_EMIT_RESPONSE,
                              {'requestId': request_id, 'packet': None})
            return
        result = handler(*packet[1:])
        if request_id is not None:
            self._respond(message, T.SERVER_SIDE_EMIT_RESPONSE,
                          {'requestId': request_id, 'packet': result})

    def _on_server_side_response(self, message: Message) -> None:
        request = self._requests.answered(message)
        if request is not None:
            request.on_answer(message.uid, message.data.get('packet'))

    def _on_sockets_join(self, message: Message) -> None:
        self._apply_rooms(message, Manager.enter_room)

    def _on_sockets_leave(self, message: Message) -> None:
        self._apply_rooms(message, Manager.leave_room)

    def _apply_rooms(self, message: Message, action: Callable) -> None:
        rooms, except_rooms, _flags = protocol.parse_opts(message.data)
        new_rooms = protocol.parse_rooms(message.data)
        for sid, _eio_sid in self._targets(message.nsp, rooms, except_rooms):
            for room in new_rooms:
                try:
                    action(self, sid, message.nsp, room)
                except ValueError as exc:  # e.g. joining another sid's room
                    self._log.warning('cannot apply room %r to %s: %s',
                                      room, sid, exc)

    def _on_disconnect_sockets(self, message: Message) -> None:
        rooms, except_rooms, _flags = protocol.parse_opts(message.data)
        close = bool(message.data.get('close'))
        for sid, eio_sid in self._targets(message.nsp, rooms, except_rooms):
            if close:
                # engine.io waits for the client's queue to drain: never in
                # the reader, where a stuck client would stop the stream
                self._runtime.start(self.server.eio.disconnect, eio_sid)
            else:
                self.server.disconnect(sid, namespace=message.nsp,
                                       ignore_queue=True)

    _handlers: dict[int, Callable] = {
        T.BROADCAST: _on_broadcast,
        T.SOCKETS_JOIN: _on_sockets_join,
        T.SOCKETS_LEAVE: _on_sockets_leave,
        T.DISCONNECT_SOCKETS: _on_disconnect_sockets,
        T.BROADCAST_CLIENT_COUNT: _on_client_count,
        T.BROADCAST_ACK: _on_broadcast_ack,
        T.FETCH_SOCKETS: _on_fetch_sockets,
        T.FETCH_SOCKETS_RESPONSE: _on_fetch_response,
        T.SERVER_SIDE_EMIT: _on_server_side_emit,
        T.SERVER_SIDE_EMIT_RESPONSE: _on_server_side_response,
    }


def _ack_ttl(flags: dict) -> float:
    """How long a client's answer to another server's request is awaited:
    the request's own ``timeout`` flag (ms, as Node sends it), at most
    ``CALLBACK_TTL``."""
    timeout = flags.get('timeout')
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) \
            and timeout > 0:
        return min(timeout / 1000 + 1, CALLBACK_TTL)
    return CALLBACK_TTL


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _namespace(namespace: Any) -> str:
    """A caller's namespace: None is '/', as in python-socketio."""
    if namespace is None:
        return '/'
    if not isinstance(namespace, str) or not namespace.startswith('/'):
        raise ValueError(f'namespace must be a str starting with "/", '
                         f'got {namespace!r}')
    return namespace


def _check_event(event: Any) -> None:
    if not isinstance(event, str):
        raise TypeError(f'event must be a str, got {event!r}')


def _args(data: Any) -> list:
    """python-socketio's convention: a tuple is several arguments, None is
    none, anything else is one."""
    if isinstance(data, tuple):
        return list(data)
    return [] if data is None else [data]


_open_managers: weakref.WeakSet = weakref.WeakSet()


def _after_fork() -> None:
    for mgr in list(_open_managers):
        mgr._new_process()


os.register_at_fork(after_in_child=_after_fork)


@atexit.register
def _close_all(timeout: float = EXIT_WAIT) -> None:
    """Flush what is still queued when the interpreter exits: one wait
    of up to ``timeout`` s for all managers together, then each closes
    (logging what it could not write, and why)."""
    managers = list(_open_managers)
    deadline = time.monotonic() + timeout
    for mgr in managers:
        mgr.flush(max(deadline - time.monotonic(), 0))
    for mgr in managers:
        mgr.close(timeout=max(deadline - time.monotonic(), 0))
