"""Fixtures: a private Redis per test, and clusters of Socket.IO nodes.

Under ``SIO_ASYNC_MODE=eventlet`` or ``gevent`` the standard library is
monkey patched first, before anything imports socket, threading or redis.
"""
from __future__ import annotations

from .asyncmode import monkey_patch

monkey_patch()

import pytest  # noqa: E402

from .deployments import suite_server  # noqa: E402
# the Node.js interoperability fixtures, for test_node_interop*.py
from .interop import (js, js_client, make_js_server, py,  # noqa: E402,F401
                      py_client)
from .nodes import Node  # noqa: E402


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
