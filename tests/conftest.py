"""Fixtures: a private Redis per test, and clusters of Socket.IO nodes.

Under ``SIO_ASYNC_MODE=eventlet`` or ``gevent`` the standard library is
monkey patched first, before anything imports socket, threading or redis.

With ``SIO_TEST_DEPLOYMENT`` set, only the tests that use its server (the
``redis_server`` fixture) or are marked ``deployment`` are collected: the
others would run just as they do in the standalone envs (so are the tests
of how apps are served, ``SERVING``: browsers, README commands, HTTP
servers and workers). Of the wire tests between Python and Node servers
(``WIRE``), the TLS, Sentinel and valkey-py envs keep those marked
``every_deployment``; the cluster env keeps them all.

With ``SIO_TEST_MANAGER=asyncio``, only the tests that run servers through
``Node`` (see ``uses_nodes``) and the asyncio tests are collected: the
others test the sync manager directly, as they do in the other envs.
Under eventlet or gevent, the asyncio tests, those of pure logic and of the
wire to Node servers are not (``alike_in_every_mode``).
"""
from __future__ import annotations

import functools
import inspect
import re

from .asyncmode import ASYNC_MODE, monkey_patch

monkey_patch()

import pytest  # noqa: E402

from socketio_streams.backoff import Backoff  # noqa: E402

from .deployments import DEPLOYMENT, suite_server  # noqa: E402
# the Node.js interoperability fixtures, for test_node_interop*.py
from .interop import (js, js_client, make_js_server, py,  # noqa: E402,F401
                      py_client)
from .nodes import MANAGER, Node  # noqa: E402

#: the reconnection backoff cap in the tests' own process (5 s otherwise):
#: after an outage, a test waits for Redis, not for the next attempt
BACKOFF_CAP = 0.5

#: how apps are served and used (browsers, the README's and the examples'
#: commands, HTTP servers, workers): the same on every deployment, so left
#: to the standalone envs
SERVING = {'test_browser.py', 'test_readme.py', 'test_examples.py',
           'test_admin_ui.py', 'test_async_deployment.py',
           'test_deployment.py'}

#: the fixtures that start ``Node`` servers (``py``: test_node_interop*.py)
NODE_FIXTURES = {'make_node', 'cluster', 'nodes', 'py'}


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'deployment: uses the SIO_TEST_DEPLOYMENT server without '
        'the redis_server fixture (kept in the deployment envs)')
    config.addinivalue_line(
        'markers', 'every_deployment: a wire test between Python and Node '
        'servers kept in every deployment env (the others run in the '
        'standalone and cluster envs only)')
    config.addinivalue_line(
        'markers', 'nodes: runs servers through Node, not by a fixture of '
        'NODE_FIXTURES nor in its own body (kept under SIO_TEST_MANAGER='
        'asyncio)')


def pytest_collection_modifyitems(config, items):
    """In a deployment env, drop the tests that never touch it (and those
    of how apps are served: ``SERVING``); under the
    asyncio manager, the tests that run no ``Node``; under eventlet or
    gevent, the asyncio manager's own tests."""
    kept, dropped = [], []
    patched = ASYNC_MODE in ('eventlet', 'gevent')
    for item in items:
        uses = ((DEPLOYMENT == 'standalone' or
                 (item.path.name not in SERVING and
                  ('redis_server' in item.fixturenames or
                   item.get_closest_marker('deployment') is not None))) and
                (MANAGER != 'asyncio' or uses_nodes(item)) and
                not (patched and alike_in_every_mode(item)) and
                not wire_alike_on(DEPLOYMENT, item))
        (kept if uses else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


#: tests the same under every async mode, so run in the threading envs
#: only: pure logic (no I/O), the operator CLI (a process of its own, never
#: patched), and the wire between Python and Node servers
#: (one codec and one set of handlers in every mode; how each mode runs
#: them is what the rest of the suite tests)
WIRE = {'test_node_interop.py', 'test_node_interop_ops.py'}
ALIKE = {'test_core.py', 'test_fuzz.py', 'test_protocol.py', 'test_plain.py',
         'test_cli.py',
         *WIRE}
#: a test or parametrisation of the asyncio world, by its name (with its
#: parameters: ``test_async_*``, ``*_under_asyncio``, ``*[fastapi]``)
_ASYNCIO_NAME = re.compile(r'(^|[_\[-])(async|asyncio|arun|fastapi)([_\]-]|$)')


def alike_in_every_mode(item: pytest.Item) -> bool:
    """Whether a test runs only event loops (``test_*async*.py``, names
    such as ``*_under_asyncio`` or ``test_async_*``, ``[fastapi]``) or is
    one of ``ALIKE``: in a process eventlet or gevent patched, it tests
    nothing the threading envs do not. (The examples' subprocesses get no
    ``SIO_ASYNC_MODE``: Flask-SocketIO picks eventlet or gevent where it is
    installed, uvicorn never does.)"""
    return 'async' in item.path.name or item.path.name in ALIKE or \
        _ASYNCIO_NAME.search(item.name) is not None


def wire_alike_on(deployment: str, item: pytest.Item) -> bool:
    """Whether a wire test (``WIRE``) tests on ``deployment`` nothing the
    standalone envs do not: on TLS, Sentinel or the valkey-py client, the
    Node side connects with node-redis and the entries are the same bytes,
    so a few tests marked ``every_deployment`` show the mixed cluster works
    there. On Redis Cluster the keys, slots and sharded channels differ:
    all of them run."""
    return deployment in ('tls', 'sentinel', 'valkey-client') and \
        item.path.name in WIRE and \
        item.get_closest_marker('every_deployment') is None


def uses_nodes(item: pytest.Item) -> bool:
    """Whether a test runs servers through ``Node`` (a fixture of
    ``NODE_FIXTURES``, a ``Node(...)`` call in its body, or the marker
    ``nodes``), or is an asyncio test (``test_*async*.py``)."""
    if 'async' in item.path.name:
        return True
    if NODE_FIXTURES & set(getattr(item, 'fixturenames', ())) or \
            item.get_closest_marker('nodes') is not None:
        return True
    function = getattr(item, 'function', None)
    return function is not None and \
        re.search(r'\bNode\(', inspect.getsource(function)) is not None


def pytest_report_header(config):
    lines = []
    if DEPLOYMENT != 'standalone':
        lines.append(f'SIO_TEST_DEPLOYMENT={DEPLOYMENT}: tests that do not '
                     f'use its server are deselected (they run in the '
                     f'standalone envs)')
    if MANAGER == 'asyncio':
        lines.append('SIO_TEST_MANAGER=asyncio: the servers are AsyncServers '
                     'with AsyncRedisStreamsManager; tests that run no Node '
                     'are deselected (they run in the other envs)')
    return lines


@pytest.fixture(autouse=True, scope='session')
def quick_reconnects():
    """Backoff capped at ``BACKOFF_CAP`` for every manager of the suite."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Backoff, '__init__', functools.partialmethod(
            Backoff.__init__, cap=BACKOFF_CAP))
        yield


@pytest.fixture
def redis_server(tmp_path, request):
    """A fresh Redis/Valkey server on a free port, stopped afterwards; or
    the deployment ``SIO_TEST_DEPLOYMENT`` names (``deployments.py``)."""
    yield from suite_server(tmp_path, request)


@pytest.fixture
def make_node(redis_server):
    """``make_node(**options)`` -> a started Node; all stopped afterwards."""
    nodes: list[Node] = []

    def make(**options) -> Node:
        node = Node(redis_server.url, **options)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture
def cluster(make_node):
    """Three nodes on one Redis."""
    return [make_node() for _ in range(3)]


@pytest.fixture
def nodes():
    """A list to put Nodes in; all stopped afterwards."""
    made: list[Node] = []
    yield made
    for node in made:
        node.stop()


@pytest.fixture
def emitters():
    """A list to put managers in (write_only ones); all closed
    afterwards."""
    made: list = []
    yield made
    for mgr in made:
        mgr.close(timeout=5)


@pytest.fixture
def clients():
    """A list to put clients in; all disconnected afterwards."""
    made: list = []
    yield made
    for client in made:
        client.disconnect()
