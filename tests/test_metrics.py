"""Prometheus metrics scraped over HTTP from live servers."""
from urllib.request import urlopen

import pytest

from socketio_streams import RedisStreamsManager

from .nodes import hold_reader, settle, wait_until

prometheus_client = pytest.importorskip('prometheus_client')
from prometheus_client.parser import (  # noqa: E402
    text_string_to_metric_families)

from socketio_streams import metrics  # noqa: E402


@pytest.fixture
def scrape():
    """``scrape(registry)`` -> {(name, manager uid): value}, over HTTP;
    ``labels=('manager', 'stream')``: keyed by those labels' values."""
    servers = []

    def get(registry, labels=('manager',)):
        if not servers:
            servers.append(prometheus_client.start_http_server(
                0, addr='127.0.0.1', registry=registry))
        port = servers[0][0].server_port
        with urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5) as r:
            text = r.read().decode()
        return {(sample.name, *(sample.labels[k] for k in labels)):
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name.startswith('socketio_streams_')}

    yield get
    for httpd, thread in servers:
        httpd.shutdown()
        thread.join(5)


def test_stats_of_live_servers_scraped(cluster, clients, scrape):
    registry = prometheus_client.CollectorRegistry()
    sender, receiver = cluster[0], cluster[1]
    for node in (sender, receiver):
        assert metrics.register(node.mgr, registry) is \
            metrics.register(node.mgr, registry)
    clients.append(receiver.client())
    before = scrape(registry)
    uid0, uid1 = sender.mgr.uid, receiver.mgr.uid
    assert before[('socketio_streams_healthy', uid1)] == 1
    assert before[('socketio_streams_buffered', uid0)] == 0
    for name in [*metrics.COUNTERS, *metrics.GAUGES]:
        suffix = '_total' if name in metrics.COUNTERS else ''
        assert (f'socketio_streams_{name}{suffix}', uid1) in before

    for n in range(5):
        sender.sio.emit('n', n)
    settle(sender, clients)
    delivered = ('socketio_streams_delivered_total', uid1)
    published = ('socketio_streams_published_total', uid0)

    def moved():
        # a packet is published once its reply is read: the last one's,
        # written ahead, within 0.1 s (no later emit reads it)
        now = scrape(registry)
        return now if now[delivered] >= before[delivered] + 6 and \
            now[published] >= before[published] + 6 else None

    # 5 packets and the settle marker
    after = wait_until(moved, 5, 'delivered and published to move')
    assert after[('socketio_streams_lag', uid1)] == 0
    assert ('socketio_streams_healthy', cluster[2].mgr.uid) not in after

    metrics.unregister(sender.mgr, registry)
    assert ('socketio_streams_published_total', uid0) not in scrape(registry)


def test_a_closed_manager_reports_unhealthy(make_node, scrape):
    registry = prometheus_client.CollectorRegistry()
    node = make_node()
    metrics.register(node.mgr, registry)
    node.client().sio.disconnect()
    assert scrape(registry)[('socketio_streams_healthy', node.mgr.uid)] == 1
    node.stop()
    assert scrape(registry)[('socketio_streams_healthy', node.mgr.uid)] == 0


def test_lag_per_stream_key_scraped(redis_server, make_node, emitters,
                                    clients, scrape):
    """With ``stream_count`` > 1 each namespace has a stream key of its
    own: the reader that is behind shows its lag on its key's label, the
    other 0; and 0 once it caught up."""
    registry = prometheus_client.CollectorRegistry()
    node = make_node(stream_count=3, read_count=10)
    metrics.register(node.mgr, registry)
    clients.append(node.client(['/', '/chat']))
    slow, other = node.mgr._links.stream('/'), node.mgr._links.stream('/chat')
    assert slow != other
    reader = node.mgr._links.readers[slow]
    seen, gates = hold_reader(reader, 1, 15)
    emitter = RedisStreamsManager(redis_server.url, write_only=True,
                                  stream_count=3)
    emitters.append(emitter)
    emitter.emit('n', 0)
    wait_until(lambda: seen, 5, 'the first entry read')
    for n in range(1, 100):
        emitter.emit('n', n)
    emitter.emit('c', 0, namespace='/chat')
    assert emitter.flush(10)
    gates[1].set()  # the reader reads on, and stops again at entry 15
    wait_until(lambda: len(seen) >= 15, 10, 'entry 15')
    clients[0].wait_for('c', namespace='/chat')
    wait_until(lambda: node.mgr.stats()['streams'][other]['lag'] == 0, 10,
               'the other stream caught up')
    behind = scrape(registry, ('manager', 'stream'))
    uid = node.mgr.uid
    lag = behind[('socketio_streams_stream_lag', uid, slow)]
    assert 0 < lag < 100
    assert behind[('socketio_streams_stream_lag', uid, other)] == 0
    assert behind[('socketio_streams_lag', uid, 'socket.io')] == lag
    assert [k for k in behind if k[0] == 'socketio_streams_stream_lag'] == [
        ('socketio_streams_stream_lag', uid, key)
        for key in sorted([slow, other])]

    gates[15].set()
    clients[0].wait_for('n', count=100, timeout=30)

    def caught_up():
        now = scrape(registry, ('manager', 'stream'))
        return now if now[('socketio_streams_stream_lag', uid, slow)] == 0 \
            else None

    assert wait_until(caught_up, 10, 'caught up')[
        ('socketio_streams_lag', uid, 'socket.io')] == 0
    last = redis_server.client().xinfo_stream(slow)['last-generated-id']
    assert node.mgr.stats()['streams'][slow]['last_id'] == last.decode()
