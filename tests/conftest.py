"""Fixtures: a private Redis per test, and clusters of Socket.IO nodes."""
from __future__ import annotations

import pytest

from .nodes import Node
from .servers import RedisProcess


@pytest.fixture
def redis_server(tmp_path):
    """A fresh Redis/Valkey server on a free port, stopped afterwards."""
    server = RedisProcess(str(tmp_path / 'redis')).start()
    yield server
    server.stop()


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
def clients():
    """A list to put clients in; all disconnected afterwards."""
    made: list = []
    yield made
    for client in made:
        client.disconnect()
