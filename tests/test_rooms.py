"""Room operations and disconnects for sockets that live on other servers."""
import pytest

from .nodes import settle, wait_until


@pytest.fixture
def trio(cluster, clients):
    for node in cluster:
        clients.append(node.client())
    return cluster, clients


def test_enter_room_for_a_socket_on_another_server(trio):
    nodes, clients = trio
    nodes[0].sio.enter_room(clients[1].sid(), 'vip')
    nodes[0].sio.emit('vip', 1, to='vip')  # same server: ordered after join
    settle(nodes[0], clients)
    assert [len(c.events('vip')) for c in clients] == [0, 1, 0]
    assert 'vip' in nodes[1].sio.rooms(clients[1].sid())


def test_leave_room_for_a_socket_on_another_server(trio):
    nodes, clients = trio
    clients[2].sio.call('join', 'club')
    nodes[0].sio.leave_room(clients[2].sid(), 'club')
    nodes[0].sio.emit('club', 1, to='club')
    settle(nodes[0], clients)
    assert clients[2].events('club') == []
    assert 'club' not in nodes[2].sio.rooms(clients[2].sid())


def test_close_room_empties_it_on_every_server(trio):
    nodes, clients = trio
    for client in clients:
        client.sio.call('join', 'doomed')
    nodes[0].sio.close_room('doomed')
    nodes[0].sio.emit('doomed', 1, to='doomed')
    settle(nodes[0], clients)
    assert [c.events('doomed') for c in clients] == [[], [], []]
    for node, client in zip(nodes, clients):
        assert 'doomed' not in node.sio.rooms(client.sid())


def test_disconnect_a_socket_on_another_server(trio):
    nodes, clients = trio
    gone = []
    nodes[1].sio.on('disconnect', lambda sid, reason=None: gone.append(sid))
    victim = clients[1].sid()
    nodes[0].sio.disconnect(victim)
    wait_until(lambda: not clients[1].sio.connected, 5, 'client disconnect')
    assert gone == [victim]
    assert clients[0].sio.connected and clients[2].sio.connected


def test_disconnect_of_an_unknown_sid_harms_nobody(trio):
    nodes, clients = trio
    nodes[0].sio.disconnect('no-such-sid')
    settle(nodes[0], clients)
    assert all(c.sio.connected for c in clients)


def test_room_operations_in_another_namespace(cluster, clients):
    chat = cluster[1].client(namespaces=['/chat'])
    clients.append(chat)
    sid = chat.sid('/chat')
    cluster[0].sio.enter_room(sid, 'lobby', namespace='/chat')
    cluster[0].sio.emit('hi', 1, to='lobby', namespace='/chat')
    chat.wait_for('hi', namespace='/chat')
    assert chat.events('hi', '/chat') == [(1,)]
