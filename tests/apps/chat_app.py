"""A Flask-SocketIO chat, run by gunicorn in ``tests/test_deployment.py``.

``REDIS_URL`` names the Redis shared by every instance, ``SIO_ASYNC_MODE``
the async mode of the gunicorn worker (``gevent`` or ``eventlet``)::

    REDIS_URL=redis://127.0.0.1:6379/0 SIO_ASYNC_MODE=gevent \\
        gunicorn -k gevent -w 1 --chdir tests/apps chat_app:app
"""
import os

from flask import Flask, request
from flask_socketio import SocketIO, emit

from socketio_streams import RedisStreamsManager

app = Flask(__name__)
socketio = SocketIO(app, async_mode=os.environ['SIO_ASYNC_MODE'],
                    client_manager=RedisStreamsManager(
                        os.environ['REDIS_URL']))


@socketio.on('pid')
def pid():
    """The process serving this client (tests tell workers apart)."""
    return os.getpid()


@socketio.on('say')
def say(text):
    """Broadcast ``text`` to every client of every instance."""
    emit('said', {'text': text, 'from': request.sid}, broadcast=True)
