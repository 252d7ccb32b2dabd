"""The chat of ``chat.py`` on FastAPI: a ``socketio.AsyncServer`` with the
``AsyncRedisStreamsManager``, the same page and the same events, so its
servers and those of ``chat.py`` form one cluster on one Redis::

    export REDIS_URL=redis://localhost:6379/0
    uvicorn examples.fastapi_chat:app --port 8001
    python examples/fastapi_chat.py --port 8002

The manager is made at module level, before the event loop runs, as apps
are written: its tasks start on uvicorn's loop. ``SERVER_LABEL`` names the
server (default ``host:port``, the port of the first request).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import socketio
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from socketio_streams import AckTimeoutError, AsyncRedisStreamsManager

# beside this file: on the path as a script, not as examples.fastapi_chat
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_common import (STATIC, TEMPLATES, label, message,  # noqa: E402
                         panel, people, ping_answer, ping_result, session)

mgr = AsyncRedisStreamsManager(os.environ.get('REDIS_URL',
                                              'redis://localhost:6379/0'),
                               connection_state_recovery=True)
sio = socketio.AsyncServer(async_mode='asgi', client_manager=mgr)
web = FastAPI()
web.mount('/static', StaticFiles(directory=STATIC), name='static')
templates = Jinja2Templates(directory=TEMPLATES)
app = socketio.ASGIApp(sio, other_asgi_app=web, on_shutdown=sio.shutdown)
port = None  # uvicorn knows it; we learn it from the first request


def me(scope: dict | None = None) -> str:
    """This server's label (the first ``scope`` tells the port)."""
    global port
    if port is None and scope and scope.get('server'):
        port = scope['server'][1]
    return label(port or '?')


@web.get('/')
async def index(request: Request):
    return templates.TemplateResponse(request, 'chat.html',
                                      {'server': me(request.scope)})


async def everyone(skip_sid=None) -> list:
    """Every socket of every server, as the page lists them."""
    try:
        sockets = await mgr.fetch_sockets(skip_sid=skip_sid, timeout=3)
    except AckTimeoutError as exc:  # a server did not answer: the others
        sockets = exc.responses
    return people(sockets)


async def push_online(skip_sid=None) -> None:
    """Tell every client of every server who is online now."""
    await sio.emit('online', await everyone(skip_sid))


@sio.event
async def connect(sid, environ, auth=None):
    me(environ['asgi.scope'])


@sio.event
async def hello(sid, name):
    """A page (re)connected, or renamed its user: see chat.py."""
    await sio.save_session(sid, session(name, me()))
    sio.start_background_task(push_online)
    return {'server': me(), 'recovered': mgr.is_recovered(sid)}


@sio.event
async def disconnect(sid, *reason):
    sio.start_background_task(push_online, sid)


async def said(sid, text, **extra) -> dict:
    return message(await sio.get_session(sid), text, me(), **extra)


@sio.event
async def say(sid, text):
    await sio.emit('said', await said(sid, text))


@sio.event
async def join(sid, room):
    await sio.enter_room(sid, str(room))
    return me()


@sio.on('say-to')
async def say_to(sid, room, text):
    await sio.emit('said', await said(sid, text, room=room), to=str(room))


@sio.event
async def who(sid):
    """Every socket of every server: fetch_sockets."""
    return await everyone()


@mgr.on('server-ping')
async def answer_ping(sent_at):
    """Another server's /ping: say who we are and when it arrived."""
    return ping_answer(me(), sent_at)


@sio.on('ping-servers')
async def ping_servers(sid):
    """/ping: every other server answers through server_side_emit."""
    done = asyncio.Event()
    result: dict = {}
    started = time.perf_counter()

    def answered(err, responses):
        result.update(ping_result(started, err, responses))
        done.set()

    await mgr.server_side_emit('server-ping', time.time(),
                               callback=answered, timeout=3)
    await asyncio.wait_for(done.wait(), 5)
    return {'from': me(), **result}


@sio.event
async def cluster(sid):
    """The panel: servers, sockets per server, this server's counters."""
    return panel(me(), await mgr.server_count(), await everyone(),
                 mgr.stats())


@sio.on('ping-all')
async def ping_all(sid):
    """Ask every client of every server; return their answers."""
    try:
        return await mgr.emit_with_ack('ping', me(), timeout=5)
    except AckTimeoutError as exc:
        return exc.responses


if __name__ == '__main__':
    import uvicorn
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8001)
    args = parser.parse_args()
    port = args.port
    uvicorn.run(app, host=args.host, port=args.port, log_level='warning')
