"""Every option is checked at construction and honoured at run time."""
import json
import threading

import pytest

from socketio_streams import RedisStreamsManager

from .nodes import settle, wait_until


@pytest.mark.parametrize('options, message', [
    ({'stream_count': 0}, 'stream_count'),
    ({'stream_count': '2'}, 'stream_count'),
    ({'max_len': -1}, 'max_len'),
    ({'read_count': 0}, 'read_count'),
    ({'block_time_ms': 0}, 'block_time_ms'),
    ({'buffer_size': 0}, 'buffer_size'),
    ({'stream_name': ''}, 'stream_name'),
    ({'channel_prefix': 'a#b'}, 'channel_prefix'),
    ({'session_key_prefix': 3}, 'session_key_prefix'),
    ({'use_sharded_pubsub': 'yes'}, 'use_sharded_pubsub'),
    ({'only_plaintext': 1}, 'only_plaintext'),
    ({'write_only': None}, 'write_only'),
    ({'connection_state_recovery': 'on'}, 'connection_state_recovery'),
    ({'connection_state_recovery': {'max_disconnection_duration': 0}},
     'max_disconnection_duration'),
    ({'connection_state_recovery': {'typo': 1}}, 'typo'),
    ({'logger': 'log'}, 'logger'),
    ({'redis_options': 'x'}, 'redis_options'),
    ({'streamName': 'x'}, 'unknown option'),
])
def test_bad_option_values_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        RedisStreamsManager('redis://localhost:1/0', **options)


@pytest.mark.parametrize('url', [
    'localhost:6379', 'http://localhost', 'redis+sentinel://h:1/0/a/b',
    'redis+cluster://host-without-port', 'redis://h:port/0', None, 42])
def test_bad_urls_raise_value_error(url):
    with pytest.raises(ValueError):
        RedisStreamsManager(url)


@pytest.mark.parametrize('url', [
    'redis://localhost:1/0', 'rediss://u:p@localhost:1/0?ssl_cert_reqs=none',
    'unix:///tmp/redis.sock', 'valkey://localhost:1/0',
    'redis+sentinel://u:p@h1:1,h2:2/0/mymaster', 'redis+sentinel://h:1/svc',
    'redis+cluster://h1:1,h2:2'])
def test_supported_url_schemes_are_accepted_without_connecting(url):
    RedisStreamsManager(url)


def test_client_is_used_instead_of_url(redis_server, make_node, clients):
    node = make_node()
    clients.append(node.client())
    mgr = RedisStreamsManager(client=redis_server.client(), write_only=True)
    mgr.emit('via-client', 1)
    mgr.close()
    clients[0].wait_for('via-client')


def test_stream_name_and_read_options_are_used(redis_server, make_node,
                                               clients):
    node = make_node(stream_name='my-stream', read_count=7,
                     block_time_ms=300)
    clients.append(node.client())
    commands = []

    def monitor():
        try:
            with redis_server.client().monitor() as m:
                for command in m.listen():
                    commands.append(command['command'])
        except Exception:
            pass  # the server went away at the end of the test

    threading.Thread(target=monitor, daemon=True).start()
    wait_until(lambda: any('XREAD' in c for c in commands), 5, 'XREAD')
    mgr = RedisStreamsManager(redis_server.url, write_only=True,
                              stream_name='my-stream', max_len=50)
    for i in range(20):
        mgr.emit('n', i)
    mgr.close()
    clients[0].wait_for('n', count=20)
    assert clients[0].events('n') == [(i,) for i in range(20)]
    assert not redis_server.client().exists('socket.io')
    xreads = [c for c in list(commands) if c.startswith('XREAD')]
    assert xreads and all(
        'COUNT 7' in c and 'BLOCK 300' in c and 'STREAMS my-stream ' in c
        for c in xreads)
    assert any(c.startswith('XADD my-stream MAXLEN ~ 50 *')
               for c in list(commands))


def test_max_len_trims_the_stream(redis_server):
    mgr = RedisStreamsManager(redis_server.url, write_only=True, max_len=50)
    for i in range(2000):
        mgr.emit('n', i)
    mgr.close()
    # MAXLEN ~ trims whole macro nodes (100 entries by default): approximate
    assert redis_server.client().xlen('socket.io') < 200


def test_stream_count_spreads_namespaces_over_streams(redis_server,
                                                      make_node, clients):
    node = make_node(stream_count=4)
    chat = node.client(namespaces=['/', '/chat'])
    clients.append(chat)
    other = make_node(stream_count=4)
    other.sio.emit('root', 1)
    other.sio.emit('chat', 2, namespace='/chat')
    chat.wait_for('root')
    chat.wait_for('chat', namespace='/chat')
    r = redis_server.client()
    assert r.xlen('socket.io-3') == 2  # '/' and '/chat' both hash to 3
    assert not r.exists('socket.io')


def test_negative_hash_namespaces_are_written_where_node_would(
        redis_server, make_node, clients):
    node = make_node(stream_count=4)
    mgr = RedisStreamsManager(redis_server.url, write_only=True,
                              stream_count=4)
    mgr.emit('x', 1, namespace='/négatif-namespace')
    mgr.close()
    assert redis_server.client().xlen('socket.io--1') == 1
    del node


def test_channel_prefix_names_the_channels(redis_server, make_node, clients):
    node = make_node(channel_prefix='myapp')
    clients.append(node.client())
    channels = {c.decode() for c in redis_server.client().pubsub_channels()}
    assert 'myapp#/#' in channels
    assert f'myapp#/#{node.mgr.uid}#' in channels
    assert not any(c.startswith('socket.io') for c in channels)


def test_only_plaintext_writes_json_even_for_bytes(redis_server, make_node,
                                                   clients):
    node = make_node(only_plaintext=True)
    receiver = make_node(only_plaintext=True)
    client = receiver.client()
    clients.append(client)
    node.sio.emit('bin', b'\x01\x02')
    client.wait_for('bin')
    entry = redis_server.client().xrange('socket.io')[-1][1]
    assert entry[b'data'].startswith(b'{')
    assert json.loads(entry[b'data'])['packet']['data'][1] == {
        'type': 'Buffer', 'data': [1, 2]}


def test_stats_count_published_and_delivered(cluster, clients):
    for node in cluster:
        clients.append(node.client())
    cluster[0].sio.emit('x', 1)
    settle(cluster[0], clients)
    # published once its reply is read: the last one's, written ahead,
    # within 0.1 s (no later emit reads it)
    wait_until(lambda: cluster[0].mgr.stats()['buffered'] == 0, 2,
               'the last reply read (written ahead)')
    sender, receiver = cluster[0].mgr.stats(), cluster[1].mgr.stats()
    assert sender['published'] >= 2 and sender['delivered'] >= 2
    assert receiver['delivered'] >= 2
    assert sender['errors'] == 0
    assert sender['healthy'] is True and cluster[0].mgr.healthy()


def test_logger_option_receives_the_managers_log(redis_server):
    import logging
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger('my-app')
    logger.addHandler(Keep())
    mgr = RedisStreamsManager(redis_server.url, write_only=True,
                              logger=logger)
    redis_server.stop()
    mgr.emit('x', 1)
    wait_until(lambda: any('unreachable' in r for r in records), 10,
               'outage logged')
    mgr.close(timeout=0.1)


def test_redis_options_apply_to_every_connection(redis_server, make_node,
                                                 clients):
    node = make_node(redis_options={'client_name': 'sio-test'})
    clients.append(node.client())
    node.sio.emit('x', 1)
    clients[0].wait_for('x')
    names = [c.get('name') for c in redis_server.client().client_list()]
    # publisher, reader and subscriber connections all carry the name
    assert names.count('sio-test') >= 3


def test_a_new_reader_starts_at_the_end_of_the_stream(redis_server,
                                                      make_node, clients):
    """Entries written before a server started are not delivered; those
    written once its first client is connected are."""
    r = redis_server.client()
    mgr = RedisStreamsManager(redis_server.url, write_only=True)
    mgr.emit('old', 1)
    mgr.flush()
    node = make_node()
    clients.append(node.client())
    mgr.emit('new', 2)
    mgr.close()
    clients[0].wait_for('new')
    assert clients[0].events('old') == []
    assert r.xlen('socket.io') == 2
