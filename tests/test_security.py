"""The minimal ACL user that README.rst gives is enough, verbatim, on
every deployment (``SIO_TEST_DEPLOYMENT``: over TLS, on a cluster...)."""
import pathlib
import re

import pytest

from socketio_streams.connection import Connector
from socketio_streams.errors import RESPONSE_ERRORS

from .deployments import DEPLOYMENT, on_every_node, with_credentials
from .nodes import Node, wait_until

README = pathlib.Path(__file__).resolve().parent.parent / 'README.rst'


def _readme_acl() -> list[str]:
    """The ``ACL SETUSER`` line of README.rst, as arguments, with what
    README.rst says to add on Redis Cluster when the tests run on one."""
    text = README.read_text()
    match = re.search(r'^\s+(ACL SETUSER .+)$', text, re.M)
    assert match, 'README.rst gives no ACL SETUSER line'
    args = match.group(1).split()
    if DEPLOYMENT == 'cluster':
        extra = re.search(r'On Redis Cluster add ``([^`]+)``', text)
        assert extra, 'README.rst gives no ACL additions for Redis Cluster'
        args += extra.group(1).split()
    return args


@pytest.fixture
def acl_url(redis_server):
    args = _readme_acl()
    on_every_node(redis_server, *args)
    user, password = args[2], args[4].lstrip('>')
    return with_credentials(redis_server.url, user, password)


def test_the_readme_acl_user_runs_every_feature(acl_url, redis_server,
                                                clients):
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
        admin = redis_server.client()  # the readers' positions, written
        wait_until(lambda: admin.hlen('socket.io:readers') == 2, 5,
                   'both readers\' positions in Redis')
    finally:
        for node in nodes:
            node.stop()


def test_the_acl_user_cannot_touch_other_keys(acl_url):
    r = Connector(acl_url).new_client()
    with pytest.raises(RESPONSE_ERRORS, match='NOPERM|permission'):
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
