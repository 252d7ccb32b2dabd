"""Servers with either manager, for benchmarks comparing them in one run."""
from __future__ import annotations

import socketio

from tests.nodes import Client, serve

MANAGERS = ('socketio.RedisManager', 'RedisStreamsManager')
#: the managers for ``socketio.AsyncServer``
ASYNC_MANAGERS = ('socketio.AsyncRedisManager', 'AsyncRedisStreamsManager')


def make_manager(kind: str, url: str, **options):
    if kind.startswith('socketio.'):
        return getattr(socketio, kind.split('.')[1])(url, **options)
    import socketio_streams
    return getattr(socketio_streams, kind)(url, **options)


class Server:
    """A threading ``socketio.Server`` with the given manager, served."""

    def __init__(self, kind: str, url: str):
        self.sio = socketio.Server(client_manager=make_manager(kind, url),
                                   async_mode='threading')
        self.http = serve(socketio.WSGIApp(self.sio))

    def client(self) -> Client:
        return Client(self.http.url, ['/'])

    def stop(self) -> None:
        self.http.stop()
        close = getattr(self.sio.manager, 'close', None)
        if close:
            close()
