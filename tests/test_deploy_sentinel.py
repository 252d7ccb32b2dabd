"""Sentinel: a master, a replica and three sentinels on loopback ports.

The whole suite also runs through ``redis+sentinel://`` URLs in this env
(tox -e py311-sentinel); these tests kill the master.
"""
from __future__ import annotations

import time

import pytest

from socketio_streams import items as items_module

from .deployments import (SERVICE, SentinelSetup, assert_serving,
                          assert_unreplicated_resent, client_libraries,
                          lose_unreplicated, only_in, steady_broadcast)
from .nodes import Node, client_library

pytestmark = only_in('sentinel')


@pytest.fixture
def sentinels(tmp_path):
    made = SentinelSetup(str(tmp_path / 'sentinel')).start()
    yield made
    made.stop()


def test_a_sentinel_url_and_a_passed_sentinel_client_both_work(
        sentinels, nodes, clients):
    """A server made from a ``redis+sentinel://`` URL and one made from a
    client of ``Sentinel.master_for`` share broadcasts and requests."""
    sentinel = client_library().sentinel.Sentinel(
        [('127.0.0.1', s.port) for s in sentinels.sentinels])
    nodes.append(Node(sentinels.url))
    nodes.append(Node(None, client=sentinel.master_for(SERVICE)))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('a', 1)
    nodes[1].sio.emit('b', 2)
    for c in clients:
        c.wait_for('a')
        c.wait_for('b')
    assert nodes[1].mgr.server_count() == 2
    assert len(nodes[0].mgr.fetch_sockets()) == 2


def test_the_manager_follows_the_promoted_replica(sentinels, nodes, clients,
                                                  emitters):
    """The master dies while three publishers emit 100 packets/s each;
    the sentinels promote the replica and every server carries on with it:
    nothing lost or duplicated, requests answered again."""
    run = steady_broadcast(sentinels.url, nodes, clients, emitters)
    old = sentinels.master()
    new = sentinels.kill_master()
    run.wait_sent(500, 30)
    result = run.tally(clients)
    print(f'\nsentinel failover: {result.line()}; reconnects '
          f'{sum(n.mgr.stats()["reconnects"] for n in nodes)}, resent '
          f'{run.resent()}')
    assert new is not old
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
    assert new.client().xlen('socket.io') > 0
    assert_serving(nodes)


@pytest.mark.parametrize('resend', [True, False], ids=['resend', 'control'])
def test_writes_the_dying_master_never_replicated_are_written_again(
        sentinels, nodes, clients, emitters, monkeypatch, resend):
    """The master acknowledges entries its replica never gets and dies;
    the replica is promoted: publishers write those entries again, so the
    stream holds every packet and no client loses or doubles one. The
    control run (nothing kept for re-sending) shows the hole it closes."""
    if not resend:
        monkeypatch.setattr(items_module, 'RECENT_MAX', 0)
    run = steady_broadcast(sentinels.url, nodes, clients, emitters)
    lose_unreplicated(sentinels.master(), sentinels.replica(),
                      lambda: time.sleep(0.5))
    new = sentinels.kill_master(kill=False)
    run.wait_sent(500, 30)
    assert_unreplicated_resent(run, clients, new.client(), resend,
                               'sentinel')


def test_valkey_sentinel_urls_use_the_valkey_client(sentinels, nodes,
                                                    clients):
    pytest.importorskip('valkey')
    url = sentinels.url.replace('redis+', 'valkey+', 1)
    nodes.extend(Node(url) for _ in range(2))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('hi', 1)
    clients[1].wait_for('hi')
    assert len(nodes[1].mgr.fetch_sockets()) == 2
    for node in nodes:
        assert client_libraries(node.mgr) == {'valkey'}
