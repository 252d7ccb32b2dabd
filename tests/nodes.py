"""Real Socket.IO servers and clients for the integration tests.

A ``Node`` is a ``socketio.Server`` with a ``RedisStreamsManager``, served
over HTTP on a free loopback port; a ``Client`` is a ``socketio.Client``
connected to one over websocket, recording every event it receives.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable

import socketio
from werkzeug.serving import WSGIRequestHandler, make_server

from socketio_streams import RedisStreamsManager

NAMESPACES = ['/', '/chat']


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


def serve(app, port: int = 0):
    """Serve a WSGI app in a thread; returns the werkzeug server."""
    server = make_server('127.0.0.1', port, app, threaded=True,
                         request_handler=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Node:
    """One python-socketio server process-alike, sharing Redis."""

    def __init__(self, redis_url: str, **options: Any):
        self.mgr = RedisStreamsManager(redis_url, **options)
        self.sio = socketio.Server(client_manager=self.mgr,
                                   async_mode='threading',
                                   namespaces=NAMESPACES)
        self.events: list = []
        for ns in NAMESPACES:
            self.sio.on('join', self._join, namespace=ns)
            self.sio.on('leave', self._leave, namespace=ns)
            self.sio.on('echo', lambda sid, data: data, namespace=ns)
        self.http = serve(socketio.WSGIApp(self.sio))
        self.url = f'http://127.0.0.1:{self.http.server_port}'

    def _join(self, sid, room):
        self.sio.enter_room(sid, room)

    def _leave(self, sid, room):
        self.sio.leave_room(sid, room)

    def client(self, namespaces=None, **kwargs) -> 'Client':
        return Client(self.url, namespaces or ['/'], **kwargs)

    def stop(self) -> None:
        self.http.shutdown()
        self.mgr.close(timeout=2)


class Client:
    """A ``socketio.Client`` over websocket that records what it receives."""

    def __init__(self, url: str, namespaces: list, answers: dict | None = None,
                 **connect_kwargs: Any):
        self.received: list[tuple[str, str, tuple]] = []
        self.sio = socketio.Client(reconnection=False)
        answers = answers or {}

        @self.sio.on('*', namespace='*')
        def record(event, namespace, *args):
            self.received.append((namespace, event, args))
            if event in answers:
                return answers[event](*args)

        self.sio.connect(url, namespaces=namespaces, transports=['websocket'],
                         wait_timeout=10, **connect_kwargs)
        # the threading server has ended the websocket by the time the
        # client closes it: don't wait websocket-client's 3 s for a reply
        ws = self.sio.eio.ws
        ws.close = functools.partial(ws.close, timeout=0.2)

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
