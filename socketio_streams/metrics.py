"""Prometheus metrics: the ``stats()`` of managers, for ``prometheus_client``
(``pip install "socketio-streams[prometheus]"``)::

    from prometheus_client import start_http_server
    from socketio_streams import metrics

    metrics.register(mgr)          # once per manager
    start_http_server(9100)        # or prometheus_client.make_wsgi_app()

Every sample has the labels ``manager`` (the manager's uid: one per server
process) and ``stream``: its ``stream_name``, except in
``socketio_streams_stream_lag``, one sample per Redis stream key the
manager reads (``socket.io-2``... with ``stream_count`` > 1), where it is
that key.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Iterator, Union

from prometheus_client.core import (REGISTRY, CollectorRegistry,
                                    CounterMetricFamily, GaugeMetricFamily,
                                    Metric)
from prometheus_client.registry import Collector

PREFIX = 'socketio_streams_'
LABELS = ('manager', 'stream')
Family = Union[CounterMetricFamily, GaugeMetricFamily]

COUNTERS = {
    'published': 'Stream entries, PUB/SUB messages and sessions written',
    'delivered': 'Packets from the stream sent to local clients (each)',
    'reconnects': 'Reconnections to Redis after an error',
    'skipped': 'Stream entries or messages that did not decode',
    'errors': 'Errors while talking to Redis',
    'duplicates': 'Stream entries read twice and dropped',
    'gaps': 'Stream entries trimmed before this server read them',
    'resent': 'Stream entries written again after a failover lost them',
    'buffer_full': 'Emits refused because the buffer was full',
}
GAUGES = {
    'buffered': 'Packets queued, not acknowledged by Redis yet',
    'lag': 'Stream entries not read yet, summed over the streams read',
    'pending_requests': 'Requests waiting for answers from other servers',
    'healthy': '1 while connected to Redis and keeping up, else 0',
}
#: from ``stats()['streams']``: one sample per stream key read
STREAM_LAG = 'stream_lag'
STREAM_LAG_HELP = 'Stream entries not read yet, per stream key read'


class StatsCollector(Collector):
    """Exports ``stats()`` of every manager added (held weakly: a manager
    that is gone stops being exported)."""

    def __init__(self) -> None:
        self._managers: weakref.WeakSet = weakref.WeakSet()

    def add(self, mgr: Any) -> None:
        self._managers.add(mgr)

    def remove(self, mgr: Any) -> None:
        self._managers.discard(mgr)

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for mgr in list(self._managers):
            stats = mgr.stats()
            labels = [mgr.uid, mgr.options.stream_name]
            for name in (*COUNTERS, *GAUGES):
                families[name].add_metric(labels, float(stats.get(name, 0)))
            for key, stream in sorted(stats.get('streams', {}).items()):
                families[STREAM_LAG].add_metric([mgr.uid, key],
                                                float(stream['lag']))
        return iter(families.values())

    @staticmethod
    def _families() -> dict[str, Family]:
        families: dict[str, Family] = {
            name: CounterMetricFamily(PREFIX + name, text, labels=LABELS)
            for name, text in COUNTERS.items()}
        families.update(
            (name, GaugeMetricFamily(PREFIX + name, text, labels=LABELS))
            for name, text in GAUGES.items())
        families[STREAM_LAG] = GaugeMetricFamily(
            PREFIX + STREAM_LAG, STREAM_LAG_HELP, labels=LABELS)
        return families


_collectors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def register(mgr: Any,
             registry: CollectorRegistry | None = None) -> StatsCollector:
    """Export ``mgr.stats()`` through ``registry`` (the default one of
    ``prometheus_client`` if None); managers registered on one registry
    share a collector, which is returned."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = StatsCollector()
            registry.register(collector)
    collector.add(mgr)
    return collector


def unregister(mgr: Any, registry: CollectorRegistry | None = None) -> None:
    """Stop exporting ``mgr``."""
    collector = _collectors.get(REGISTRY if registry is None else registry)
    if collector is not None:
        collector.remove(mgr)
