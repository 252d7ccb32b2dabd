"""Fixtures: a private Redis per test, and clusters of Socket.IO nodes.

Under ``SIO_ASYNC_MODE=eventlet`` or ``gevent`` the standard library is
monkey patched first, before anything imports socket, threading or redis.

With ``SIO_TEST_DEPLOYMENT`` set, only the tests that use its server (the
``redis_server`` fixture) or are marked ``deployment`` are collected: the
others would run just as they do in the standalone envs.
"""
from __future__ import annotations

import functools

from .asyncmode import monkey_patch

monkey_patch()

import pytest  # noqa: E402

from socketio_streams.backoff import Backoff  # noqa: E402

from .deployments import DEPLOYMENT, suite_server  # noqa: E402
# the Node.js interoperability fixtures, for test_node_interop*.py
from .interop import (js, js_client, make_js_server, py,  # noqa: E402,F401
                      py_client)
from .nodes import Node  # noqa: E402

#: the reconnection backoff cap in the tests' own process (5 s otherwise):
#: after an outage, a test waits for Redis, not for the next attempt
BACKOFF_CAP = 0.5


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'deployment: uses the SIO_TEST_DEPLOYMENT server without '
        'the redis_server fixture (kept in the deployment envs)')


def pytest_collection_modifyitems(config, items):
    """In a deployment env, drop the tests that never touch it."""
    if DEPLOYMENT == 'standalone':
        return
    kept, dropped = [], []
    for item in items:
        uses = ('redis_server' in item.fixturenames or
                item.get_closest_marker('deployment') is not None)
        (kept if uses else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config):
    if DEPLOYMENT != 'standalone':
        return (f'SIO_TEST_DEPLOYMENT={DEPLOYMENT}: tests that do not use '
                f'its server are deselected (they run in the standalone '
                f'envs)')


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
