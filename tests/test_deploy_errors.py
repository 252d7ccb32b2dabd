"""Deployment mistakes get errors that say what is wrong: a bad URL, a
server without a feature the options need, a user without a permission.
Each test starts its own standalone server; they run in every env."""
from __future__ import annotations

import logging

import pytest

from socketio_streams import RedisStreamsManager
from socketio_streams.errors import RESPONSE_ERRORS

from .nodes import Node, wait_until
from .servers import RedisProcess

LOGGER = 'socketio_streams'


@pytest.mark.parametrize('url, says', [
    ('redis+cluster://', "bad host:port ''"),
    ('redis+cluster://127.0.0.1:7000,127.0.0.1', "bad host:port"),
    ('redis+cluster://127.0.0.1:7000/2', 'database 0 only'),
    ('redis+cluster://127.0.0.1:7000?socket_timeout=soon',
     'bad value'),
    ('redis+sentinel://127.0.0.1:26379', '/<db>/<service>'),
    ('redis+sentinel://127.0.0.1:26379/x/y/z', '/<db>/<service>'),
    ('rediss://127.0.0.1:6380/0?ssl_ca_certs=/no/such/ca.pem',
     "ssl_ca_certs file '/no/such/ca.pem'"),
    ('redis://127.0.0.1:port/0', 'bad port'),
    ('memcached://127.0.0.1:11211', "unsupported Redis URL scheme"),
    ('127.0.0.1:6379', 'must look like redis://'),
])
def test_a_wrong_url_is_refused_at_once_saying_what_is_wrong(url, says):
    with pytest.raises(ValueError, match=says.replace('?', r'\?')):
        RedisStreamsManager(url)


def test_a_missing_certificate_file_in_redis_options_is_refused():
    with pytest.raises(ValueError, match="'ssl_ca_certs'.*does not exist"):
        RedisStreamsManager('rediss://127.0.0.1:6380/0',
                            redis_options={'ssl_ca_certs': '/nope.pem'})


@pytest.fixture
def old_server(tmp_path):
    """A server without sharded PUB/SUB, as Redis 6 is (the commands are
    renamed away)."""
    server = RedisProcess(str(tmp_path / 'redis'), args=(
        '--rename-command', 'SPUBLISH', '', '--rename-command',
        'SSUBSCRIBE', '')).start()
    yield server
    server.stop()


def test_sharded_pubsub_on_a_server_without_it_names_the_version_needed(
        old_server, caplog, clients):
    """The subscriber and the publisher say that SSUBSCRIBE and SPUBLISH
    need Redis >= 7.0; the server reports itself unhealthy; the stream
    still carries broadcasts."""
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        node = Node(old_server.url, use_sharded_pubsub=True)
        try:
            clients.append(node.client())
            wait_until(lambda: 'SSUBSCRIBE' in caplog.text, 5,
                       'the subscriber error')
            node.mgr.server_side_emit('hello')
            wait_until(lambda: 'SPUBLISH' in caplog.text, 5,
                       'the publisher error')
            assert not node.mgr.healthy()
            node.sio.emit('still', 'works')
            clients[0].wait_for('still')
        finally:
            node.stop()
    for command in ('SSUBSCRIBE', 'SPUBLISH'):
        line = next(r.getMessage() for r in caplog.records
                    if command in r.getMessage())
        assert 'does not know' in line and 'Redis >= 7.0' in line, line
        assert 'use_sharded_pubsub=True' in line, line


@pytest.fixture
def limited(tmp_path):
    """``url(*rules)``: a URL of an ACL user with exactly ``rules``."""
    server = RedisProcess(str(tmp_path / 'redis')).start()

    def url(*rules: str) -> str:
        server.client().execute_command(
            'ACL', 'SETUSER', 'limited', 'reset', 'on', '>pw', *rules)
        return server.url.replace('://', '://limited:pw@', 1)
    yield url
    server.stop()


ALL_KEYS = ('~*', '&*', '+@all')


def test_a_refused_command_is_named_by_the_publisher(limited, caplog):
    url = limited(*ALL_KEYS, '-xadd')
    mgr = RedisStreamsManager(url, write_only=True)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        mgr.emit('x', 1)
        assert mgr.flush(5)
        mgr.close()
    assert mgr.stats()['errors'] == 1
    assert "refused XADD to 'socket.io': the user lacks a permission" in \
        caplog.text
    assert "'xadd' command" in caplog.text and 'ACL rule' in caplog.text


def test_a_refused_key_is_named_with_the_command_that_wanted_it(
        limited, caplog, clients):
    """Redis does not say which command touched a forbidden key: we do
    (here SET of a recovery session, the key pattern lacking)."""
    url = limited('~socket.io*', '&*', '+@all')
    node = Node(url, connection_state_recovery=True)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        try:
            client = node.client()
            node.sio.emit('warm', 1)
            client.wait_for('warm')
            node.drive(node.mgr._persist(client.sid(), '/'))  # a dropped one's
            assert node.mgr.flush(5)
            wait_until(lambda: 'refused SET' in caplog.text, 5, 'the error')
        finally:
            client.disconnect()
            node.stop()
    assert "refused SET to 'sio:session:" in caplog.text
    assert 'lacks a permission' in caplog.text


def test_a_reader_without_xread_says_so_and_is_unhealthy(limited, caplog,
                                                         clients):
    url = limited(*ALL_KEYS, '-xread')
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        node = Node(url)
        try:
            clients.append(node.client())
            wait_until(lambda: 'XREAD' in caplog.text, 5, 'the error')
            assert not node.mgr.healthy()
        finally:
            node.stop()
    assert "reader of 'socket.io': Redis" in caplog.text
    assert "'xread' command" in caplog.text


def test_a_refused_request_raises_an_error_naming_the_command(limited):
    url = limited(*ALL_KEYS, '-pubsub|numsub')
    mgr = RedisStreamsManager(url, write_only=True)
    try:
        with pytest.raises(RESPONSE_ERRORS, match='PUBSUB NUMSUB.*lacks '
                                                  'a permission'):
            mgr.server_count()
    finally:
        mgr.close()
