"""Real Socket.IO servers and clients for the integration tests.

A ``Node`` is a ``socketio.Server`` with a ``RedisStreamsManager``, served
over HTTP on a free loopback port; a ``Client`` is a ``socketio.Client``
connected to one over websocket, recording every event it receives.
Servers run in ``SIO_ASYNC_MODE`` (see ``asyncmode.py``): served by
werkzeug in threads, by ``eventlet.wsgi`` or by ``gevent.pywsgi``.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
import time
from typing import Any, Callable

import socketio
from werkzeug.serving import WSGIRequestHandler, make_server

from socketio_streams import RedisStreamsManager
from socketio_streams.steps import run

from .asyncmode import ASYNC_MODE

NAMESPACES = ['/', '/chat']
#: which manager the Nodes run: ``sync`` (RedisStreamsManager under
#: SIO_ASYNC_MODE) or ``asyncio`` (AsyncRedisStreamsManager under uvicorn,
#: see async_nodes.py)
MANAGER = os.environ.get('SIO_TEST_MANAGER') or 'sync'


def client_library() -> Any:
    """``redis``, or ``redis.asyncio`` under the asyncio manager: where
    the clients a ``Node(None, client=...)`` takes come from."""
    import redis.asyncio.cluster
    import redis.asyncio.sentinel
    import redis.cluster
    import redis.sentinel
    return redis.asyncio if MANAGER == 'asyncio' else redis


def waiting_first(step: Callable, wait: Callable) -> Callable:
    """``step`` (a manager task's step: a plain function, or one making
    steps) calling the blocking ``wait(*args)`` first, which holds that
    task only: under the asyncio manager it waits in a thread, not on the
    node's loop."""
    def steps(*args: Any) -> Any:
        yield (functools.partial(asyncio.to_thread, wait, *args)
               if MANAGER == 'asyncio' else functools.partial(wait, *args))
        result = step(*args)
        if inspect.isgenerator(result):
            result = yield from result
        return result
    return steps


def hold_reader(reader: Any, *at: int) -> tuple[list, dict]:
    """Make a stream reader wait before handling its ``at``-th entries
    (counted from 1) until each one's event is set: a reader held behind
    on real Redis. Returns (ids of the entries it came to, {n: event})."""
    seen: list = []
    gates = {n: threading.Event() for n in at}

    def gate(key, entry_id, fields):
        seen.append(entry_id)
        if len(seen) in gates:
            gates[len(seen)].wait(30)

    reader._handle = waiting_first(reader._handle, gate)
    reader._own = None  # its own entries come to the gate too
    return seen, gates


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0,
               message: str = 'condition') -> Any:
    """Poll ``predicate`` until truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {message}')
        time.sleep(0.01)


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args):  # keep test output for the tests
        pass


class HTTPServer:
    """A WSGI app served on a free loopback port in the background, by the
    server that matches ``ASYNC_MODE``, until ``stop()``."""

    def __init__(self, app: Callable) -> None:
        self._stop: Callable[[], Any]
        if ASYNC_MODE == 'eventlet':
            import eventlet
            import eventlet.wsgi
            sock = eventlet.listen(('127.0.0.1', 0))
            self.port: int = sock.getsockname()[1]
            green = eventlet.spawn(eventlet.wsgi.server, sock, app,
                                   log_output=False)
            self._stop = green.kill
        elif ASYNC_MODE == 'gevent':
            # engineio's gevent driver serves websockets with
            # simple-websocket (as long as gevent-websocket is absent)
            from gevent.pywsgi import WSGIServer
            _whole_websocket_frames()
            server = WSGIServer(('127.0.0.1', 0), app, log=None,
                                handler_class=_gevent_handler())
            server.start()
            self.port = server.server_port
            self._stop = functools.partial(server.stop, timeout=1)
        else:
            http = make_server('127.0.0.1', 0, app, threaded=True,
                               request_handler=_QuietHandler)
            # shutdown() waits for the next poll: 0.5 s by default, on
            # every server of every test
            threading.Thread(target=http.serve_forever, daemon=True,
                             kwargs={'poll_interval': 0.05}).start()
            self.port = http.server_port
            self._stop = http.shutdown
        self.url = f'http://127.0.0.1:{self.port}'

    def stop(self) -> None:
        """Stop accepting connections."""
        self._stop()


def _gevent_handler() -> type:
    """gevent's handler, closing the connection after a websocket: once
    simple-websocket is done with it, pywsgi would read the client's closing
    frame as the next HTTP request (an "Invalid HTTP method" error, and a
    client waiting for its close to be answered)."""
    from gevent.pywsgi import WSGIHandler

    class Handler(WSGIHandler):
        def run_application(self) -> None:
            try:
                super().run_application()
            finally:
                upgrade = self.environ.get('HTTP_UPGRADE', '')
                if upgrade.lower() == 'websocket':
                    self.close_connection = True

    return Handler


def _whole_websocket_frames() -> None:
    """simple-websocket <= 1.1.0 writes a frame with one ``socket.send()``,
    which under gevent may send part of it: a message bigger than the
    socket buffer then corrupts the connection (upstream issue
    miguelgrinberg/simple-websocket#45, fixed after 1.1.0). The servers of
    these tests send whole frames, as fixed versions do."""
    from importlib.metadata import version

    from packaging.version import Version
    from simple_websocket import ws

    if Version(version('simple-websocket')) > Version('1.1.0'):
        return

    def send(self, data: Any) -> None:
        if not self.connected:
            raise ws.ConnectionClosed(self.close_reason, self.close_message)
        if isinstance(data, bytes):
            event = ws.Message(data=data)
        else:
            event = ws.TextMessage(data=str(data))
        self.sock.sendall(self.ws.send(event))

    ws.Base.send = send


def serve(app: Callable) -> HTTPServer:
    """Serve a WSGI app in the background (see ``HTTPServer``)."""
    return HTTPServer(app)


class Serving:
    """What a test does with a server of either kind."""

    url: str

    def client(self, namespaces=None, **kwargs) -> 'Client':
        return Client(self.url, namespaces or ['/'], **kwargs)

    def at_once(self, calls: Callable[[], list]) -> list:
        """The results of ``calls()`` (a list of calls of the node's
        ``sio``/``mgr``), made in one go as an event handler would make
        them: on an AsyncNode's loop, with no round trip to it between
        two."""
        return calls()

    def drive(self, steps: Any) -> Any:
        """Drive the steps of one of the manager's internals (``steps``
        as ``node.mgr._persist(...)`` returns them) in the node's world."""
        return run(steps)

    def forked(self) -> None:
        """In a child of ``fork()``: make the node's ``sio``/``mgr`` work
        in this process (an AsyncNode's loop thread did not come along)."""


def Node(redis_url: str, **options: Any) -> Any:
    """A server of the manager ``SIO_TEST_MANAGER`` names."""
    if MANAGER == 'asyncio':
        from .async_nodes import AsyncNode
        return AsyncNode(redis_url, NAMESPACES, **options)
    return SyncNode(redis_url, **options)


class SyncNode(Serving):
    """One python-socketio server process-alike, sharing Redis."""

    def __init__(self, redis_url: str, **options: Any):
        self.mgr = RedisStreamsManager(redis_url, **options)
        self.sio = socketio.Server(client_manager=self.mgr,
                                   async_mode=ASYNC_MODE,
                                   namespaces=NAMESPACES)
        self.events: list = []
        for ns in NAMESPACES:
            self.sio.on('join', self._join, namespace=ns)
            self.sio.on('leave', self._leave, namespace=ns)
            self.sio.on('echo', lambda sid, data: data, namespace=ns)
        self.http = serve(socketio.WSGIApp(self.sio))
        self.url = self.http.url

    def _join(self, sid, room):
        self.sio.enter_room(sid, room)

    def _leave(self, sid, room):
        self.sio.leave_room(sid, room)

    def stop(self) -> None:
        self.http.stop()
        self.mgr.close(timeout=2)


def _quick_websocket_close() -> None:
    """The suite's servers have ended a websocket by the time its client
    closes it (the threading server, a refused connection): the clients
    need not wait websocket-client's 3 s for an answer to their close."""
    import websocket
    websocket.WebSocket.close = functools.partialmethod(
        websocket.WebSocket.close, timeout=0.05)


_quick_websocket_close()


class Client:
    """A ``socketio.Client`` over websocket that records what it receives."""

    def __init__(self, url: str, namespaces: list, answers: dict | None = None,
                 **connect_kwargs: Any):
        self.received: list[tuple[str, str, tuple]] = []
        self.sio = socketio.Client(reconnection=False)
        _in_arrival_order(self.sio)
        answers = answers or {}

        @self.sio.on('*', namespace='*')
        def record(event, namespace, *args):
            self.received.append((namespace, event, args))
            if event in answers:
                return answers[event](*args)

        self.sio.connect(url, namespaces=namespaces, transports=['websocket'],
                         wait_timeout=10, **connect_kwargs)

    def sid(self, namespace: str = '/') -> str:
        return self.sio.get_sid(namespace)

    def events(self, event: str | None = None, namespace: str = '/') -> list:
        """Args of each received ``event`` in ``namespace``, in order."""
        return [args for ns, ev, args in list(self.received)
                if ns == namespace and (event is None or ev == event)]

    def wait_for(self, event: str, count: int = 1, namespace: str = '/',
                 timeout: float = 5.0) -> list:
        return wait_until(
            lambda: len(self.events(event, namespace)) >= count and
            self.events(event, namespace), timeout,
            f'{count} {event!r} on {namespace}')

    def disconnect(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def _in_arrival_order(sio: socketio.Client) -> None:
    """Handle messages one by one, as they arrive: engineio's client
    starts a thread per message, and under load two of them can record
    their events out of order, which would be blamed on the servers."""
    eio = sio.eio
    trigger = eio._trigger_event

    def trigger_in_order(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == 'message':
            kwargs['run_async'] = False
        return trigger(event, *args, **kwargs)

    eio._trigger_event = trigger_in_order


def settle(node: Node, clients: list, namespace: str = '/') -> None:
    """Emit a marker from ``node`` and wait until every client has it.

    Packets from one server arrive in order, so once the marker is in,
    anything ``node`` emitted before it has arrived too: negative checks
    ("this client got nothing") need no sleeping.
    """
    settle.count += 1
    marker = settle.count
    node.sio.emit('settle', marker, namespace=namespace)
    for client in clients:
        wait_until(lambda c=client: (marker,) in c.events('settle', namespace),
                   5, f'settle marker {marker}')


settle.count = 0
