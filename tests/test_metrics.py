"""Prometheus metrics scraped over HTTP from live servers."""
from urllib.request import urlopen

import pytest

from .nodes import settle, wait_until

prometheus_client = pytest.importorskip('prometheus_client')
from prometheus_client.parser import (  # noqa: E402
    text_string_to_metric_families)

from socketio_streams import metrics  # noqa: E402


@pytest.fixture
def scrape():
    """``scrape(registry)`` -> {(name, manager uid): value}, over HTTP."""
    servers = []

    def get(registry):
        if not servers:
            servers.append(prometheus_client.start_http_server(
                0, addr='127.0.0.1', registry=registry))
        port = servers[0][0].server_port
        with urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5) as r:
            text = r.read().decode()
        return {(sample.name, sample.labels['manager']): sample.value
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

    def moved():
        now = scrape(registry)
        return now if now[delivered] >= before[delivered] + 6 else None

    # 5 packets and the settle marker
    after = wait_until(moved, 5, 'delivered to move')
    assert after[('socketio_streams_published_total', uid0)] >= before[
        ('socketio_streams_published_total', uid0)] + 6
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
