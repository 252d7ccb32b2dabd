"""What the asyncio tests of steps need before ``Connector(asyncio=True)``
and the asyncio ``connection`` functions exist (helper conn): a connector
of ``redis.asyncio`` clients for a plain URL; ``numsub``/``channels`` as
steps for one (non-cluster) client; ``close_client`` returning the
awaitable."""
from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import redis.asyncio

from socketio_streams import protocol

from .deployments import DEPLOYMENT


def skip_unless_standalone() -> None:
    if DEPLOYMENT != 'standalone':
        pytest.skip('the asyncio connector shim knows plain URLs only')


class AsyncConnector:
    """The parts of ``Connector`` that recovery and requests use."""

    def __init__(self, url: str):
        self.url = url
        self._client: Any = None
        self.made: list = []

    def describe(self) -> str:
        return self.url

    def client(self) -> Any:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, **overrides: Any) -> Any:
        client = redis.asyncio.Redis.from_url(self.url, **overrides)
        self.made.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.made:
            await client.aclose()


def numsub(client: Any, channel: str, sharded: bool = False):
    assert not sharded
    ((_, count),) = yield partial(client.pubsub_numsub, channel)
    return int(count)


def channels(client: Any, pattern: str, sharded: bool = False):
    assert not sharded
    found = yield partial(client.pubsub_channels, pattern)
    return {protocol.as_text(name) for name in found}


def close_client(client: Any, log: Any = None) -> Any:
    return client.aclose()
