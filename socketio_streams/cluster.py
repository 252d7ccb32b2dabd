"""Requests awaiting answers from other servers, and what they return.

``Requests``' methods that talk to Redis or wait are :mod:`steps
<socketio_streams.steps>`; the bookkeeping (``Request``, ``Pending``...)
does no I/O."""
from __future__ import annotations

import functools
import heapq
import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from . import protocol
from .connection import close_client
from .membership import channels, numsub
from .errors import CLUSTER_ERRORS, RETRYABLE
from .exceptions import AckTimeoutError
from .steps import Steps

#: the name under which a server counts its own clients in a request
SELF = ''
#: while a request waits, how often the list of live servers is refreshed
MEMBERSHIP_POLL = 0.25
#: a server that let a request time out is not waited for again for this
#: long (unless it answers meanwhile): one hung server costs one timeout
SILENT_FOR = 60.0
#: reply timeout of the queries that find the live servers: a frozen Redis
#: costs a request this much beyond its own timeout, at most
QUERY_TIMEOUT = 1.0


def new_request_id() -> str:
    """16 hex characters, like Node's ``randomBytes(8)``."""
    return secrets.token_hex(8)


def ack_value(args: list | tuple) -> Any:
    """One client's answer: its first argument (as Node keeps), or all of
    them as a tuple when it gave several."""
    if len(args) == 1:
        return args[0]
    return tuple(args) if args else None


@dataclass
class ClientAcks:
    """An emit with a callback to sockets on other servers: every
    BROADCAST_ACK calls ``callback(*args)`` (the handler does: it may be a
    coroutine function). A request addressed to a single socket ends with
    its first answer; any request ends at ``expires``."""
    callback: Callable[..., Any]
    expires: float
    single: bool = True

    def on_ack(self, uid: str, args: list) -> bool:
        """Handle one answer; True when the request is complete."""
        return self.single

    def on_count(self, uid: str, count: int) -> bool:
        return False


@dataclass
class Request:
    """A request answered once by each awaited server (FETCH_SOCKETS,
    SERVER_SIDE_EMIT with an ack). ``event`` is set when complete."""
    awaited: set
    expires: float
    event: Any
    answers: dict = field(default_factory=dict)
    #: Redis could not say who is alive: not complete before it can
    blind: bool = False

    @property
    def done(self) -> bool:
        return not self.blind and self.awaited <= set(self.answers)

    def on_answer(self, uid: str, value: Any) -> None:
        self.answers.setdefault(uid, value)
        self._check()

    def live(self, servers: set) -> None:
        """Wait only for these (the others left the cluster); a blind
        request learns whom to wait for."""
        self.awaited = set(servers) if self.blind else self.awaited & servers
        self.blind = False
        self._check()

    def missing(self) -> set:
        return self.awaited - set(self.answers)

    def _check(self) -> None:
        if self.done:
            self.event.set()


@dataclass
class BroadcastAcks(Request):
    """A broadcast with acknowledgements: each awaited server first says how
    many clients it reached (BROADCAST_CLIENT_COUNT), then every client's
    answer arrives (BROADCAST_ACK). Complete when all of them are in."""
    acks: list = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.blind and self.awaited <= set(self.answers) and \
            len(self.acks) >= sum(self.answers.values())

    def on_count(self, uid: str, count: int) -> bool:
        self.on_answer(uid, count)
        return False

    def on_ack(self, uid: str, args: list) -> bool:
        self.acks.append(ack_value(args))
        self._check()
        return False


class AckExpiry:
    """Ack ids given to local clients for other servers' requests, and
    when to give up on them: clients that never answer must not leave
    callbacks behind for good. At most ``limit`` are held (the soonest to
    expire go first)."""

    def __init__(self, limit: int):
        self._limit = limit
        self._heap: list[tuple[float, int, str, int]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, expires: float, sid: str, ack_id: int) -> None:
        heapq.heappush(self._heap, (expires, next(self._order), sid, ack_id))

    def due(self, now: float) -> list[tuple[str, int]]:
        """``(sid, ack_id)`` to forget now: expired, or over the limit."""
        heap, out = self._heap, []
        while heap and (heap[0][0] <= now or len(heap) > self._limit):
            _expires, _n, sid, ack_id = heapq.heappop(heap)
            out.append((sid, ack_id))
        return out


class Pending:
    """The table of open requests; expired ones are dropped on access."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._requests)

    def add(self, request_id: str, request: Any) -> None:
        with self._lock:
            self._expire()
            self._requests[request_id] = request

    def get(self, request_id: str | None) -> Any:
        if request_id is None:
            return None
        with self._lock:
            self._expire()
            return self._requests.get(request_id)

    def discard(self, request_id: str | None) -> None:
        with self._lock:
            self._requests.pop(request_id or '', None)

    def _expire(self) -> None:
        now = time.monotonic()
        for rid in [r for r, req in self._requests.items()
                    if req.expires <= now]:
            del self._requests[rid]


class Requests:
    """This server's open requests, and who they wait for: the servers
    subscribed to a private channel of the namespace (alive, as far as
    Redis knows), less those that recently let a request time out."""

    def __init__(self, connector: Any, options: Any, uid: str):
        self._connector = connector
        self._options = options
        self._uid = uid
        self._pending = Pending()
        self._silent: dict[str, float] = {}
        self._client: Any = None

    def _query(self) -> Any:
        """The client of the membership queries (short reply timeout)."""
        if self._client is None:
            self._client = self._connector.new_client(
                socket_timeout=QUERY_TIMEOUT)
        return self._client

    def close(self) -> Steps[None]:
        """Steps: close the query client."""
        client, self._client = self._client, None
        if client is not None:
            yield functools.partial(close_client, client)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, request_id: str, request: Any) -> None:
        self._pending.add(request_id, request)

    def discard(self, request_id: str | None) -> None:
        self._pending.discard(request_id)

    def server_count(self, namespace: str) -> Steps[int]:
        """Steps: subscribers of the namespace's public channel, as Node
        counts servers (summed over a cluster's nodes)."""
        channel = protocol.public_channel(self._options.channel_prefix,
                                          namespace)
        return (yield from numsub(self._query(), channel,
                                  self._options.use_sharded_pubsub))

    def live_servers(self, namespace: str) -> Steps[set[str]]:
        """Steps: uids of the other servers listening on the namespace:
        those subscribed to a private channel."""
        prefix = protocol.public_channel(self._options.channel_prefix,
                                         namespace)
        found = yield from channels(self._query(),
                                    _glob_escape(prefix) + '*#',
                                    self._options.use_sharded_pubsub)
        return {c[len(prefix):-1] for c in found} - {self._uid}

    def open(self, namespace: str, kind: type, timeout: float,
             event: Any) -> Steps[tuple[str, Any]]:
        """Steps: a new request (of ``kind``, ``event`` set when
        complete) awaiting the live, responsive servers, and its ID."""
        if timeout <= 0:
            raise ValueError(f'timeout must be > 0, got {timeout!r}')
        now = time.monotonic()
        # servers that left for good are forgotten once their time is up
        self._silent = {uid: until for uid, until in self._silent.items()
                        if until > now}
        try:
            awaited = yield from self.live_servers(namespace)
            blind = False
        except (*RETRYABLE, *CLUSTER_ERRORS):  # nobody to wait for yet
            awaited, blind = set(), True
        request = kind(awaited - set(self._silent), now + timeout + 1, event,
                       blind=blind)
        request_id = new_request_id()
        self._pending.add(request_id, request)
        return request_id, request

    def wait(self, namespace: str, request_id: str, request: Any,
             timeout: float, what: str, partial: Callable[[Any], list],
             runtime: Any) -> Steps[dict]:
        """Steps: wait (``runtime.wait`` on its event) until complete;
        servers that leave meanwhile stop being awaited. Raises
        AckTimeoutError; the table entry always goes."""
        deadline = time.monotonic() + timeout
        try:
            while not request.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._timed_out(request, what, timeout, partial)
                yield functools.partial(runtime.wait, request.event,
                                        min(left, MEMBERSHIP_POLL))
                # a query may take QUERY_TIMEOUT: not when time is short
                if not request.done and \
                        deadline - time.monotonic() > QUERY_TIMEOUT:
                    try:
                        request.live((yield from self.live_servers(
                            namespace)))
                    except (*RETRYABLE, *CLUSTER_ERRORS):
                        pass  # still unreachable: the deadline decides
            return request.answers
        finally:
            self._pending.discard(request_id)

    def _timed_out(self, request: Any, what: str, timeout: float,
                   partial: Callable[[Any], list]) -> AckTimeoutError:
        if request.blind:
            return AckTimeoutError(
                f'{what}: no complete answer after {timeout} s (Redis '
                f'{self._connector.describe()} unreachable: the live '
                f'servers are unknown)', partial(request))
        missing = request.missing()
        until = time.monotonic() + SILENT_FOR
        self._silent.update(dict.fromkeys(missing, until))
        return AckTimeoutError(
            f'{what}: no complete answer after {timeout} s (servers not '
            f'answering: {", ".join(sorted(missing)) or "none"})',
            partial(request))

    def answered(self, message: Any) -> Any:
        """The open request a response answers (None if unknown or
        late); its sender is responsive again."""
        self._silent.pop(message.uid, None)
        return self._pending.get(protocol.request_id(message.data))


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so ``text`` matches itself."""
    return ''.join('\\' + c if c in '*?[]\\' else c for c in text)


class RemoteSocket:
    """A socket of any server of the cluster, as ``fetch_sockets`` found it.

    ``server`` is the uid of the server that holds it: the ``uid`` of the
    FETCH_SOCKETS_RESPONSE it came in (a Node server's is its namespace
    adapter's, one per namespace), our own ``manager.uid`` for a local
    socket. ``emit``, ``join``, ``leave`` and ``disconnect`` work wherever
    it lives (coroutines, for a socket found by
    ``AsyncRedisStreamsManager``).
    """

    def __init__(self, manager: Any, namespace: str, info: dict,
                 server: str):
        self._manager = manager
        self.server = server
        self.sid: str = info['id']
        self.namespace = namespace
        self.rooms: set = set(info.get('rooms') or ())
        self.data: Any = info.get('data')
        self.handshake: dict = info.get('handshake') or {}

    def __repr__(self) -> str:
        return f'<RemoteSocket {self.sid} {self.namespace} on {self.server}>'

    # each returns the manager's call: a coroutine with the asyncio one

    def emit(self, event: str, data: Any = None) -> Any:
        return self._manager.emit(event, data, namespace=self.namespace,
                                  to=self.sid)

    def join(self, room: str | list) -> Any:
        return self._manager.sockets_join(room, to=self.sid,
                                          namespace=self.namespace)

    def leave(self, room: str | list) -> Any:
        return self._manager.sockets_leave(room, to=self.sid,
                                           namespace=self.namespace)

    def disconnect(self, close: bool = False) -> Any:
        return self._manager.disconnect_sockets(to=self.sid, close=close,
                                                namespace=self.namespace)


def js_date(seconds: float) -> str:
    """A time as JavaScript's ``Date.toString()`` prints it (UTC)."""
    return time.strftime('%a %b %d %Y %H:%M:%S GMT+0000 '
                         '(Coordinated Universal Time)', time.gmtime(seconds))


def handshake(environ: dict, auth: Any, connected_at: float) -> dict:
    """Node's ``socket.handshake`` from a WSGI environ."""
    headers = {key[5:].lower().replace('_', '-'): value
               for key, value in environ.items()
               if key.startswith('HTTP_') and isinstance(value, str)}
    query_string = environ.get('QUERY_STRING', '')
    url = environ.get('PATH_INFO', '/')
    return {
        'headers': headers,
        'time': js_date(connected_at),
        'address': environ.get('REMOTE_ADDR', ''),
        'xdomain': 'HTTP_ORIGIN' in environ,
        'secure': environ.get('wsgi.url_scheme') == 'https',
        'issued': int(connected_at * 1000),
        'url': f'{url}?{query_string}' if query_string else url,
        'query': dict(parse_qsl(query_string)),
        'auth': auth if isinstance(auth, dict) else {},
    }
