"""Acknowledgements from a socket on another server come back to the caller."""
import threading

import pytest

from .nodes import wait_until


@pytest.fixture
def pair(cluster, clients):
    clients.append(cluster[1].client(answers={
        'ask': lambda x: f'answer to {x}',
        'pair': lambda x: (x, x * 2),
        'nothing': lambda x: None,
        'blob': lambda x: {'raw': x + b'!'},
    }))
    return cluster, clients[0]


def test_call_to_a_socket_on_another_server_returns_its_answer(pair):
    nodes, client = pair
    assert nodes[0].sio.call('ask', 42, to=client.sid(), timeout=5) == \
        'answer to 42'


def test_call_with_binary_data_both_ways(pair):
    nodes, client = pair
    assert nodes[2].sio.call('blob', b'\x00', to=client.sid(),
                             timeout=5) == {'raw': b'\x00!'}


def test_emit_with_callback_gets_every_ack_argument(pair):
    nodes, client = pair
    got = []
    done = threading.Event()

    def callback(*args):
        got.append(args)
        done.set()

    nodes[0].sio.emit('pair', 7, to=client.sid(), callback=callback)
    assert done.wait(5)
    assert got == [(7, 14)]


def test_ack_without_arguments(pair):
    nodes, client = pair
    got = []
    nodes[0].sio.emit('nothing', 1, to=client.sid(),
                      callback=lambda *a: got.append(a))
    wait_until(lambda: got, 5, 'ack')
    assert got == [()]


def test_many_concurrent_calls_each_get_their_own_answer(pair):
    nodes, client = pair
    results = {}

    def ask(i):
        results[i] = nodes[i % 3].sio.call('ask', i, to=client.sid(),
                                           timeout=10)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f'answer to {i}' for i in range(30)}
    for node in nodes:
        assert node.mgr.stats()['pending_requests'] == 0


def test_call_to_a_local_socket_still_works(pair):
    nodes, client = pair
    assert nodes[1].sio.call('ask', 'x', to=client.sid(), timeout=5) == \
        'answer to x'


def test_broadcast_with_callback_calls_it_for_every_client_of_the_cluster(
        cluster, clients):
    """As python-socketio's in-memory manager: every client gets an ack id,
    each answer (from any server's clients) calls the callback once."""
    for i, node in enumerate(cluster):
        clients.append(node.client(answers={'ask': lambda x, i=i: [x, i]}))
    got = []
    cluster[0].sio.emit('ask', 'q', callback=lambda *a: got.append(a))
    wait_until(lambda: len(got) >= 3, 5, 'three answers')
    assert sorted(got) == [(['q', 0],), (['q', 1],), (['q', 2],)]
    settle_ask = []
    cluster[0].sio.emit('ask', 'r', skip_sid=clients[1].sid(),
                        callback=lambda *a: settle_ask.append(a))
    wait_until(lambda: len(settle_ask) >= 2, 5, 'two answers')
    assert sorted(settle_ask) == [(['r', 0],), (['r', 2],)]
    assert len(got) == 3  # nothing more came for the first
