"""Checked by mypy in the qa env (never run): what type checkers see of the
two managers' operations, blocking methods and coroutines."""
from typing import Awaitable, assert_type

from socketio_streams import (AsyncRedisStreamsManager, RedisStreamsManager,
                              RemoteSocket)


def blocking(mgr: RedisStreamsManager) -> None:
    assert_type(mgr.fetch_sockets(namespace='/'), list[RemoteSocket])
    assert_type(mgr.server_count(), int)
    assert_type(mgr.flush(timeout=1.0), bool)
    assert_type(mgr.emit('event', {'a': 1}, to='room'), None)
    assert_type(mgr.close(), None)


async def coroutines(mgr: AsyncRedisStreamsManager) -> None:
    assert_type(mgr.fetch_sockets(), Awaitable[list[RemoteSocket]])
    assert_type(await mgr.server_count(), int)
    assert_type(await mgr.flush(1.0), bool)
    assert_type(await mgr.emit('event', None, room='r'), None)
    await mgr.close(timeout=2.0)
