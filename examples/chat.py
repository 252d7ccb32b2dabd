"""A Flask-SocketIO chat whose servers share messages through Redis Streams.

Run two servers on one Redis, open both in a browser, and talk across them::

    REDIS_URL=redis://localhost:6379/0 python examples/chat.py 5000
    REDIS_URL=redis://localhost:6379/0 python examples/chat.py 5001
"""
import os
import sys

from flask import Flask, render_template
from flask_socketio import SocketIO, emit

from socketio_streams import RedisStreamsManager

app = Flask(__name__)
socketio = SocketIO(app, client_manager=RedisStreamsManager(
    os.environ.get('REDIS_URL', 'redis://localhost:6379/0')))
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 5000


@app.route('/')
def index():
    return render_template('chat.html', port=PORT)


@socketio.on('say')
def say(text):
    emit('said', {'text': str(text)[:500], 'server': PORT}, broadcast=True)


if __name__ == '__main__':
    socketio.run(app, host='127.0.0.1', port=PORT,
                 allow_unsafe_werkzeug=True)
