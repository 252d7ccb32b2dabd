"""``AsyncRedisStreamsManager``: the manager for ``socketio.AsyncServer``
(ASGI under uvicorn or hypercorn, FastAPI/Starlette, aiohttp), the shared
core driven on the event loop with ``redis.asyncio`` clients (see
:mod:`.core`)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .core import ManagerCore
from .operations import AsyncFace, faced
from .runtime import AsyncRuntime
from .steps import Steps, awaitable

if TYPE_CHECKING:
    from .operations import Untyped as AsyncManager
else:
    from socketio import AsyncManager


@faced(awaitable)
class AsyncRedisStreamsManager(ManagerCore, AsyncFace, AsyncManager):
    """The same manager as :class:`RedisStreamsManager`, same options, wire
    format and guarantees, for ``socketio.AsyncServer``. Usage::

        mgr = socketio_streams.AsyncRedisStreamsManager('redis://localhost')
        sio = socketio.AsyncServer(async_mode='asgi', client_manager=mgr)
        app = socketio.ASGIApp(sio)

    ``client=`` takes an asyncio client (``redis.asyncio.Redis``,
    ``redis.asyncio.RedisCluster``, ``valkey.asyncio.Valkey``...). The
    cluster-wide calls, ``emit``, ``flush`` and ``close`` are coroutines;
    ``mgr.on`` handlers and callbacks may be plain or coroutine functions.
    It may be made before the event loop runs (at module level): its tasks
    start on the loop, at the first connection or the first awaited call.
    """

    _base = AsyncManager
    _runtime_class = AsyncRuntime
    _asyncio = True

    def __init__(self, url: str | None = 'redis://localhost:6379/0', *,
                 client: Any = None, redis_options: dict | None = None,
                 **options: Any):
        #: steps asked for before an event loop ran
        self._deferred: list[Steps] = []
        super().__init__(url, client=client, redis_options=redis_options,
                         **options)
        _check_pubsub(self._connector)

    def _soon(self, steps: Steps) -> None:
        """Run ``steps`` in a task of the running loop; with none running
        yet, at the first chance (see ``_start_deferred``)."""
        self._deferred.append(steps)
        self._start_deferred()

    def _start_deferred(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        deferred, self._deferred = self._deferred, []
        for steps in deferred:
            self._runtime.spawn(steps)

    def initialize(self) -> None:
        self._start_deferred()
        super().initialize()

    def _close_connection(self, eio_sid: str) -> None:
        self._runtime.start(self._disconnect_eio, eio_sid)

    async def _disconnect_eio(self, eio_sid: str) -> None:
        eio = self.server.eio
        sock = eio.sockets.get(eio_sid)
        await eio.disconnect(eio_sid)
        if sock is not None:
            # python-engineio's AsyncSocket.close (<= 4.15.1), unlike its
            # Socket.close, does not wake the websocket's writer: the
            # connection would stay open until the ping timeout (a client
            # that ignores engine.io's CLOSE packet, as socket.io-client's
            # websocket transport does, stays connected that long)
            sock.queue.put_nowait(None)


def _check_pubsub(connector: Any) -> None:
    """valkey-py's asyncio cluster client has no PUB/SUB (6.x): say so
    now, not with a subscriber failing for ever."""
    target = connector.target
    client = connector._client
    valkey_cluster = (
        target is not None and target.kind == 'cluster' and
        target.library.__name__.split('.')[0] == 'valkey') or (
        target is None and type(client).__module__.startswith('valkey')
        and not hasattr(client, 'pubsub'))
    if valkey_cluster:
        raise ValueError(
            'valkey-py\'s asyncio cluster client has no PUB/SUB, which '
            'the manager needs (requests and answers): use a '
            'redis+cluster:// URL (redis-py works with Valkey) or '
            'redis.asyncio.RedisCluster')
