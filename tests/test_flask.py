"""Flask-SocketIO apps share broadcasts with ``client_manager=`` alone."""
import pytest
from flask import Flask, request
from flask_socketio import SocketIO, emit, join_room

from socketio_streams import RedisStreamsManager

from .asyncmode import ASYNC_MODE
from .nodes import Client, serve


def make_app(redis_url):
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode=ASYNC_MODE,
                        client_manager=RedisStreamsManager(redis_url))

    @socketio.on('say')
    def say(text):
        emit('said', {'text': text, 'from': request.sid}, broadcast=True,
             include_self=False)

    @socketio.on('join')
    def join(room):
        join_room(room)

    http = serve(app)
    return socketio, http, http.url


@pytest.fixture
def apps(redis_server):
    made = [make_app(redis_server.url) for _ in range(2)]
    yield made
    for socketio, http, _url in made:
        http.stop()
        socketio.server.manager.close()


def test_flask_socketio_broadcasts_cross_servers(apps, clients):
    (sio_a, _, url_a), (sio_b, _, url_b) = apps
    a, b = Client(url_a, ['/']), Client(url_b, ['/'])
    a2 = Client(url_a, ['/'])
    clients.extend([a, b, a2])
    a.sio.emit('say', 'hello from a')
    b.wait_for('said')
    a2.wait_for('said')
    b.sio.emit('say', 'hello from b')
    a.wait_for('said')
    assert b.events('said') == [({'text': 'hello from a', 'from': a.sid()},)]
    assert a.events('said') == [({'text': 'hello from b', 'from': b.sid()},)]
    # include_self=False skipped the sender, wherever it was
    assert a2.events('said')[0] == b.events('said')[0]


def test_flask_socketio_emit_outside_a_request_reaches_a_room(apps, clients):
    (sio_a, _, url_a), (sio_b, _, url_b) = apps
    member, other = Client(url_b, ['/']), Client(url_b, ['/'])
    clients.extend([member, other])
    member.sio.call('join', 'team')
    sio_a.emit('news', 'for the team', to='team')
    member.wait_for('news')
    sio_a.emit('news', 'for all')
    other.wait_for('news')
    member.wait_for('news', count=2)  # each client gets it in its own time
    assert other.events('news') == [('for all',)]
    assert member.events('news') == [('for the team',), ('for all',)]
