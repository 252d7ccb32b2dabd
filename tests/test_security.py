"""The minimal ACL user that README.rst gives is enough, verbatim."""
import pathlib
import re

import pytest
import redis

from .nodes import Node, wait_until

README = pathlib.Path(__file__).resolve().parent.parent / 'README.rst'


def _readme_acl() -> list[str]:
    """The ``ACL SETUSER`` line of README.rst, as arguments."""
    match = re.search(r'^\s+(ACL SETUSER .+)$', README.read_text(), re.M)
    assert match, 'README.rst gives no ACL SETUSER line'
    return match.group(1).split()


@pytest.fixture
def acl_url(redis_server):
    args = _readme_acl()
    redis_server.client().execute_command(*args)
    user, password = args[2], args[4].lstrip('>')
    return (f'redis://{user}:{password}@127.0.0.1:{redis_server.port}/0')


def test_the_readme_acl_user_runs_every_feature(acl_url, clients):
    nodes = [Node(acl_url, connection_state_recovery=True) for _ in range(2)]
    try:
        clients.extend(node.client(answers={'echo': lambda x: x})
                       for node in nodes)
        nodes[0].sio.emit('hi', 1)
        for client in clients:
            client.wait_for('hi')  # (1, offset): recovery is on
        assert len(nodes[0].mgr.fetch_sockets()) == 2
        assert nodes[0].mgr.server_count() == 2
        nodes[1].mgr.on('q', lambda: 'a')
        done = []
        nodes[0].mgr.server_side_emit('q', callback=lambda e, r: done.append(
            (e, r)))
        wait_until(lambda: done == [(None, ['a'])], 5, 'server-side answer')
        assert nodes[0].mgr.emit_with_ack('echo', 'x') == ['x', 'x']
        for node in nodes:
            assert node.mgr.stats()['errors'] == 0
    finally:
        for node in nodes:
            node.stop()


def test_the_acl_user_cannot_touch_other_keys(acl_url):
    r = redis.Redis.from_url(acl_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.get('other-key')


def test_the_acl_user_can_store_and_restore_sessions(acl_url):
    from .nodejs import NodeClient, NodeUnavailable, npm_ready
    try:
        npm_ready()
    except NodeUnavailable as exc:  # pragma: no cover - node is in the CI
        pytest.skip(str(exc))
    node = Node(acl_url, connection_state_recovery=True)
    client = NodeClient(node.url)
    try:
        node.sio.emit('warmup', 0)
        client.wait_for('warmup')
        sid = client.sid
        client.command('close_transport')
        client.wait_for('disconnect')
        node.sio.emit('missed', 1)
        client.wait_for('missed', timeout=10)
        assert client.events('connect')[-1]['recovered'] is True
        assert client.sid == sid
    finally:
        client.stop()
        node.stop()
