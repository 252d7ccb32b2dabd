"""Fixtures and helpers shared by the Node.js interoperability tests
(``test_node_interop*.py``): Node servers (Socket.IO 4.8.4 with the official
``@socket.io/redis-streams-adapter`` 0.3.1) and Python servers on one Redis,
with clients of both kinds.

The fixtures are registered by ``conftest.py``; the test modules import the
helpers. Negative checks ("this client got nothing") wait for a marker
emitted by the same server after the packet under test (``mark``): one
server's packets reach every client in order, so once the marker is in,
the packet would be too.
"""
from __future__ import annotations

import itertools

import pytest

from .nodejs import NodeClient, NodeServer
from .nodes import Client, Node, wait_until

ACK_TIMEOUT_MS = 3000
_marks = itertools.count(1)


# --- fixtures (registered in conftest.py) ------------------------------------

@pytest.fixture
def make_js_server(redis_server):
    """``make_js_server(**adapter_options)`` -> a started NodeServer
    (``recovery_ms=`` turns connection state recovery on)."""
    made: list[NodeServer] = []

    def make(**options) -> NodeServer:
        server = NodeServer(redis_server.url, **options)
        made.append(server)
        # Node's reader asks for "$" again after each empty XREAD until it
        # has seen one entry; an entry of its own fixes its position, so
        # nothing written later can fall between two of its reads.
        server.command('emit', event='warm-up')
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def js_client():
    """``js_client(url, namespace='/', **options)`` -> a NodeClient."""
    made: list[NodeClient] = []

    def make(url: str, namespace: str = '/', **options) -> NodeClient:
        client = NodeClient(url, namespace, **options)
        client.namespace = namespace  # type: ignore[attr-defined]
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


@pytest.fixture
def py_client(clients):
    """``py_client(url, namespaces=['/'], **kwargs)`` -> a python Client."""
    def make(url: str, namespaces: list | None = None, **kwargs) -> Client:
        client = Client(url, namespaces or ['/'], **kwargs)
        clients.append(client)
        return client

    return make


@pytest.fixture
def py(make_node) -> Node:
    """One Python server."""
    return make_node()


@pytest.fixture
def js(make_js_server) -> NodeServer:
    """One Node server on the same Redis."""
    return make_js_server()


# --- helpers -----------------------------------------------------------------

def got(client, event: str, namespace: str = '/') -> list:
    """The argument lists of each ``event`` a client (Python or Node)
    received in ``namespace``, in order."""
    if isinstance(client, NodeClient):
        assert client.namespace == namespace, 'a NodeClient has one namespace'
        return [line['args'] for line in client.events(
            lambda line: line.get('event') == event)]
    return [list(args) for args in client.events(event, namespace)]


def wait_got(client, event: str, namespace: str = '/',
             timeout: float = 5.0) -> list:
    """Wait until ``client`` received ``event``; what it received."""
    return wait_until(lambda: got(client, event, namespace), timeout,
                      f'{event!r} in {namespace}')


def emit(server, event: str, *args, namespace: str = '/', **opts) -> None:
    """Broadcast from a Python ``Node`` or a ``NodeServer``; ``opts`` are
    ``to`` and (Python) ``skip_sid`` / (Node) ``except_``."""
    if isinstance(server, NodeServer):
        if 'except_' in opts:
            opts['except'] = opts.pop('except_')
        server.command('emit', event=event, args=list(args),
                       namespace=namespace, **opts)
    else:
        server.sio.emit(event, tuple(args), namespace=namespace, **opts)


def mark(server, receivers: list, namespace: str = '/') -> None:
    """Emit a marker from ``server``; wait until every receiver has it.
    (With connection state recovery on, the marker carries the stream
    offset as a last argument: only the first one is compared.)"""
    n = next(_marks)
    emit(server, 'mark', n, namespace=namespace)
    for client in receivers:
        wait_until(lambda c=client: any(
            args[:1] == [n] for args in got(c, 'mark', namespace)), 5,
            f'marker {n} in {namespace}')


def join(client, room: str) -> None:
    """Have a client of a Python server join ``room`` (its 'join' event)."""
    if isinstance(client, NodeClient):
        client.command('emit', event='join', args=[room], ack=True)
    else:
        client.sio.call('join', room, timeout=5)


def js_socket(server: NodeServer, sid: str, namespace: str = '/') -> dict:
    """``{id, rooms, data}`` of one of a Node server's sockets."""
    for sock in server.command('sockets', namespace=namespace):
        if sock['id'] == sid:
            return sock
    raise AssertionError(f'{sid} is not on the Node server')


def js_rooms(server: NodeServer, sid: str, namespace: str = '/') -> set:
    """The rooms a Node server has for one of its sockets."""
    return set(js_socket(server, sid, namespace)['rooms'])


def disconnect_reason(client: NodeClient) -> str:
    line = client.wait_for(lambda line: line.get('event') == 'disconnect')
    return line['args'][0]


def stream_entries(redis_server, key: str = 'socket.io') -> list:
    r = redis_server.client(decode_responses=True)
    return [fields for _id, fields in r.xrange(key)]
