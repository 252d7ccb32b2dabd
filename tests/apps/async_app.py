"""An ``AsyncServer`` with an ``AsyncRedisStreamsManager`` made at module
level, as users write it; run by ``tests/test_async_deployment.py``::

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn --workers 2 \\
        --app-dir tests/apps async_app:app
    REDIS_URL=... SIO_APP_MODE=aiohttp python -m aiohttp.web \\
        -H 127.0.0.1 -P 8000 async_app:aiohttp_app

``SIO_APP_MODE`` is ``asgi`` (default: ``app`` is a ``socketio.ASGIApp``)
or ``aiohttp`` (``aiohttp_app(argv)`` returns the ``web.Application``);
``SIO_APP_RECOVERY`` (seconds) turns connection state recovery on.
"""
import os

import socketio

from socketio_streams import AsyncRedisStreamsManager

MODE = os.environ.get('SIO_APP_MODE', 'asgi')
RECOVERY = os.environ.get('SIO_APP_RECOVERY')

mgr = AsyncRedisStreamsManager(
    os.environ['REDIS_URL'], connection_state_recovery={
        'max_disconnection_duration': float(RECOVERY)} if RECOVERY else None)
sio = socketio.AsyncServer(async_mode=MODE, client_manager=mgr)


@sio.event
async def connect(sid, environ, auth=None):
    await sio.save_session(sid, {'pid': os.getpid()})


@sio.event
async def pid(sid):
    """The process serving this client (tests tell workers apart)."""
    return os.getpid()


@sio.event
async def say(sid, text):
    """Broadcast ``text`` to every client of every process."""
    await sio.emit('said', {'text': text, 'from': sid, 'pid': os.getpid()})


@sio.event
async def join(sid, room):
    await sio.enter_room(sid, room)


@sio.event
async def broadcast(sid, event, data, to=None):
    """Emit ``event`` from this process (to ``to``), written to Redis
    before the answer."""
    await sio.emit(event, data, to=to)
    return await mgr.flush(5)


@sio.event
async def fetch(sid):
    """``[sid, pid]`` of every socket of the cluster."""
    return sorted([s.sid, s.data.get('pid')]
                  for s in await mgr.fetch_sockets(timeout=5))


if MODE == 'aiohttp':
    from aiohttp import web

    def aiohttp_app(argv):
        """For ``python -m aiohttp.web async_app:aiohttp_app``."""
        application = web.Application()
        sio.attach(application)
        application.on_shutdown.append(_shutdown)
        return application

    async def _shutdown(_app):
        """As README's aiohttp quickstart: aiohttp waits for open
        connections, so close them first (a polling client's too,
        without waiting for its next request)."""
        for socket in list(sio.eio.sockets.values()):
            await socket.close(wait=False)
        await sio.shutdown()
else:
    # sio.shutdown() closes the manager: its Redis connections too
    app = socketio.ASGIApp(sio, on_shutdown=sio.shutdown)
