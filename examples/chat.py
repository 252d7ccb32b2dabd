"""A Flask-SocketIO chat whose servers share messages through Redis Streams.

Run two servers on one Redis, open both in a browser, and talk across them::

    REDIS_URL=redis://localhost:6379/0 python examples/chat.py 5000
    REDIS_URL=redis://localhost:6379/0 python examples/chat.py 5001

Besides chatting, ``/who`` lists everyone on every server (fetch_sockets)
and ``/ping`` asks every client of every server for an answer
(emit_with_ack). ``examples/demo.py`` drives three of these servers.
"""
import os
import socket
import sys

from flask import Flask, render_template
from flask_socketio import SocketIO, emit, join_room

from socketio_streams import AckTimeoutError, RedisStreamsManager

if __name__ == '__main__' and len(sys.argv) > 1:
    PORT = int(sys.argv[1])
else:  # under gunicorn: the port of BIND (see examples/gunicorn.conf.py)
    PORT = int(os.environ.get('BIND', '127.0.0.1:5000').rpartition(':')[2])
app = Flask(__name__)
mgr = RedisStreamsManager(os.environ.get('REDIS_URL',
                                         'redis://localhost:6379/0'))


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
    return render_template('chat.html', port=PORT)


@socketio.on('say')
def say(text):
    emit('said', {'text': str(text)[:500], 'server': PORT}, broadcast=True)


@socketio.on('join')
def join(room):
    join_room(str(room))
    return PORT


@socketio.on('say-to')
def say_to(room, text):
    emit('said', {'text': str(text)[:500], 'server': PORT, 'room': room},
         to=str(room))


@socketio.on('who')
def who():
    """Every socket of every server: fetch_sockets."""
    return [{'sid': s.sid, 'rooms': sorted(s.rooms)}
            for s in mgr.fetch_sockets()]


@socketio.on('ping-all')
def ping_all():
    """Ask every client of every server; return their answers."""
    try:
        return mgr.emit_with_ack('ping', PORT, timeout=5)
    except AckTimeoutError as exc:
        return exc.responses


if __name__ == '__main__':
    socketio.run(app, host='127.0.0.1', port=PORT,
                 allow_unsafe_werkzeug=True)
