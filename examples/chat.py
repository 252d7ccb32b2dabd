"""A Flask-SocketIO chat whose servers share messages through Redis Streams.

Run two servers on one Redis, open both in a browser, and talk across them::

    REDIS_URL=redis://localhost:6379/0 python examples/chat.py 5000
    REDIS_URL=redis://localhost:6379/0 python examples/chat.py 5001

The page asks for a name, shows who is online on every server
(fetch_sockets), the server each message came through, the connection
state (connection state recovery is on: a dropped connection comes back
with what it missed), and a small panel of the cluster. Two commands:
``/who`` lists everyone on every server (fetch_sockets) and ``/ping`` asks
every other server for an answer (server_side_emit with a callback,
answered by their ``mgr.on`` handler). ``SERVER_LABEL`` names the server
(default ``host:port``). ``examples/demo.py`` drives three of these servers.
"""
import os
import socket
import sys
import time

from flask import Flask, render_template, request
from flask_socketio import SocketIO, emit, join_room

from socketio_streams import AckTimeoutError, RedisStreamsManager

# beside this file: on the path as a script and under gunicorn --chdir
from chat_common import (STATIC, TEMPLATES, label, message, panel, people,
                         ping_answer, ping_result, session)

if __name__ == '__main__' and len(sys.argv) > 1:
    PORT = int(sys.argv[1])
else:  # under gunicorn: the port of BIND (see examples/gunicorn.conf.py)
    PORT = int(os.environ.get('BIND', '127.0.0.1:5000').rpartition(':')[2])
LABEL = label(PORT)
app = Flask(__name__, template_folder=TEMPLATES, static_folder=STATIC)
mgr = RedisStreamsManager(os.environ.get('REDIS_URL',
                                         'redis://localhost:6379/0'),
                          connection_state_recovery=True)


def async_mode() -> str:
    """gevent or eventlet under a gunicorn worker that patched the standard
    library for it, else threads (Flask-SocketIO alone would pick eventlet
    or gevent whenever installed, patched or not)."""
    for mode in ('gevent', 'eventlet'):
        if socket.socket.__module__.startswith(mode):
            return mode
    return 'threading'


socketio = SocketIO(app, client_manager=mgr, async_mode=async_mode())


@app.route('/')
def index():
    return render_template('chat.html', server=LABEL)


def everyone(skip_sid=None) -> list:
    """Every socket of every server, as the page lists them."""
    try:
        sockets = mgr.fetch_sockets(skip_sid=skip_sid, timeout=3)
    except AckTimeoutError as exc:  # a server did not answer: the others
        sockets = exc.responses
    return people(sockets)


def push_online(skip_sid=None) -> None:
    """Tell every client of every server who is online now."""
    socketio.emit('online', everyone(skip_sid))


@socketio.on('hello')
def hello(name):
    """A page (re)connected, or renamed its user: remember the name where
    fetch_sockets finds it (the socket's session) and tell everyone."""
    socketio.server.save_session(request.sid, session(name, LABEL))
    socketio.start_background_task(push_online)
    return {'server': LABEL, 'recovered': mgr.is_recovered(request.sid)}


@socketio.on('disconnect')
def disconnect(*reason):
    socketio.start_background_task(push_online, request.sid)


def said(text, **extra) -> dict:
    return message(socketio.server.get_session(request.sid), text, LABEL,
                   **extra)


@socketio.on('say')
def say(text):
    emit('said', said(text), broadcast=True)


@socketio.on('join')
def join(room):
    join_room(str(room))
    return LABEL


@socketio.on('say-to')
def say_to(room, text):
    emit('said', said(text, room=room), to=str(room))


@socketio.on('who')
def who():
    """Every socket of every server: fetch_sockets."""
    return everyone()


@mgr.on('server-ping')
def answer_ping(sent_at):
    """Another server's /ping: say who we are and when it arrived."""
    return ping_answer(LABEL, sent_at)


@socketio.on('ping-servers')
def ping_servers():
    """/ping: every other server answers through server_side_emit; the
    round trip (until all answered) and each one's one-way delay."""
    done = socketio.server.eio.create_event()
    result: dict = {}
    started = time.perf_counter()

    def answered(err, responses):
        result.update(ping_result(started, err, responses))
        done.set()

    mgr.server_side_emit('server-ping', time.time(), callback=answered,
                         timeout=3)
    done.wait(5)
    return {'from': LABEL, **result}


@socketio.on('cluster')
def cluster():
    """The panel: servers, sockets per server, this server's counters;
    and who is online (again: a server that died said nothing)."""
    return panel(LABEL, mgr.server_count(), everyone(), mgr.stats())


@socketio.on('ping-all')
def ping_all():
    """Ask every client of every server; return their answers."""
    try:
        return mgr.emit_with_ack('ping', LABEL, timeout=5)
    except AckTimeoutError as exc:
        return exc.responses


if __name__ == '__main__':
    # Werkzeug is Flask's development server: fine for trying the chat;
    # see README.rst (gunicorn) for production
    socketio.run(app, host='127.0.0.1', port=PORT,
                 allow_unsafe_werkzeug=True)
