"""``RedisStreamsManager``: the manager for ``socketio.Server`` (threading,
eventlet, gevent; Flask-SocketIO), the shared core driven with blocking
calls (see :mod:`.core`)."""
from __future__ import annotations

import atexit
import time
from typing import TYPE_CHECKING, Any

from .core import ManagerCore, _open_managers
from .operations import SyncFace, faced
from .runtime import Runtime
from .steps import Steps, blocking, run

if TYPE_CHECKING:
    from .operations import Untyped as Manager
else:
    from socketio import Manager

#: how long the interpreter's exit waits, for all managers together, to
#: flush what they queued
EXIT_WAIT = 2.0


@faced(blocking)
class RedisStreamsManager(ManagerCore, SyncFace, Manager):
    """A python-socketio client manager that links servers through Redis
    Streams, wire-compatible with Node's ``@socket.io/redis-streams-adapter``.

    Emits and room operations are appended to a stream that every server
    tails with ``XREAD BLOCK``, resuming from its last entry after a lost
    connection, so nothing is lost while Redis is briefly unreachable.
    Requests and replies (acknowledgements) use PUB/SUB. Usage::

        mgr = socketio_streams.RedisStreamsManager('redis://localhost:6379/0')
        sio = socketio.Server(client_manager=mgr)

    :param url: ``redis://``, ``rediss://``, ``unix://``, ``valkey://``,
        ``valkeys://``, ``redis+sentinel://`` or ``redis+cluster://`` URL.
    :param client: an existing redis/valkey client to use instead of ``url``.
    :param stream_name: the stream key (a prefix if ``stream_count`` > 1).
    :param stream_count: namespaces are spread over this many streams.
    :param channel_prefix: prefix of the PUB/SUB channels.
    :param use_sharded_pubsub: ``SPUBLISH``/``SSUBSCRIBE`` (Redis >= 7.0).
    :param max_len: approximate stream length kept (``XADD MAXLEN ~``).
    :param read_count: entries fetched per ``XREAD``.
    :param block_time_ms: how long one ``XREAD BLOCK`` waits.
    :param session_key_prefix: key prefix of stored recovery sessions.
    :param only_plaintext: always JSON in the stream, never msgpack.
    :param connection_state_recovery: None, True or
        ``dict(max_disconnection_duration=120.0)``.
    :param write_only: an emitter for a process that is not a server.
    :param buffer_size: packets held, in order, while Redis is unreachable;
        beyond that ``emit`` raises :class:`BufferFullError`.
    :param logger: a ``logging.Logger``; ``socketio_streams`` by default.
    :param redis_options: keyword arguments for the clients built from url.
    """

    _base = Manager
    _runtime_class = Runtime

    def __init__(self, url: str | None = 'redis://localhost:6379/0', *,
                 client: Any = None, redis_options: dict | None = None,
                 **options: Any):
        super().__init__(url, client=client, redis_options=redis_options,
                         **options)

    def _soon(self, steps: Steps) -> None:
        run(steps)

    def _send(self, sends: list[tuple[str, list]]) -> None:
        send = self.server._send_eio_packet  # blocking: sent at once
        for eio_sid, eio_pkts in sends:
            for p in eio_pkts:
                send(eio_sid, p)
        self._stats.incr('delivered', len(sends))


@atexit.register
def _close_all(timeout: float = EXIT_WAIT) -> None:
    """Flush what is still queued when the interpreter exits: one wait
    of up to ``timeout`` s for all managers together, then each closes
    (logging what it could not write, and why)."""
    managers = [mgr for mgr in list(_open_managers)
                if isinstance(mgr, RedisStreamsManager)]
    deadline = time.monotonic() + timeout
    for mgr in managers:
        mgr.flush(max(deadline - time.monotonic(), 0))
    for mgr in managers:
        mgr.close(timeout=max(deadline - time.monotonic(), 0))
