"""TLS: servers that speak only TLS, with certificates this test run made.

The whole suite also runs through ``rediss://`` URLs with a CA file in
this env (tox -e py311-tls), the README's ACL user included
(``test_security.py``); these tests are about certificates.
"""
from __future__ import annotations

import logging

import pytest

from socketio_streams import RedisStreamsManager

from .deployments import (TLSRedisProcess, make_certificates, only_in,
                          with_credentials)
from .nodes import Node, wait_until
from .test_security import _readme_acl

pytestmark = only_in('tls')


@pytest.fixture
def certs(tmp_path):
    return make_certificates(tmp_path / 'certs')


@pytest.fixture
def strict_server(tmp_path, certs):
    """TLS only, and a client certificate signed by the CA required."""
    server = TLSRedisProcess(str(tmp_path / 'redis'), certs, args=(
        '--tls-auth-clients', 'yes')).start()
    yield server
    server.stop()


def test_the_ca_file_can_come_in_redis_options(redis_server, nodes,
                                               clients):
    """``rediss://`` plus ``redis_options={'ssl_ca_certs': ...}``, as the
    README shows, reaches a TLS-only server: broadcasts and requests."""
    url = f'rediss://127.0.0.1:{redis_server.port}/0'
    options = {'ssl_ca_certs': redis_server.certs['ca']}
    nodes.extend(Node(url, redis_options=options) for _ in range(2))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('over-tls', 1)
    for c in clients:
        c.wait_for('over-tls')
    assert len(nodes[1].mgr.fetch_sockets()) == 2
    assert all(n.mgr.healthy() for n in nodes)


def test_a_certificate_from_another_ca_is_refused_and_emits_wait(
        redis_server, tmp_path, caplog):
    """A CA file that did not sign the server's certificate: the
    connection is refused (the log says why), the manager is unhealthy and
    keeps what it was asked to emit."""
    other = make_certificates(tmp_path / 'other')
    url = (f'rediss://127.0.0.1:{redis_server.port}/0'
           f'?ssl_ca_certs={other["ca"]}')
    mgr = RedisStreamsManager(url, write_only=True)
    with caplog.at_level(logging.WARNING, logger='socketio_streams'):
        mgr.emit('held', 1)
        wait_until(lambda: not mgr.healthy(), 5, 'unhealthy')
        wait_until(lambda: 'certificate verify failed' in caplog.text, 5,
                   'the reason in the log')
    assert mgr.stats()['buffered'] == 1
    mgr.close(timeout=0.1)


def test_a_client_certificate_and_the_readme_acl_user(strict_server, nodes,
                                                      clients):
    """Mutual TLS (client certificate in redis_options) with the README's
    ACL user: broadcasts and requests work; without the certificate the
    server refuses the manager."""
    args = _readme_acl()
    strict_server.client().execute_command(*args)
    url = with_credentials(strict_server.url, args[2], args[4][1:])
    options = {'ssl_certfile': strict_server.certs['client-cert'],
               'ssl_keyfile': strict_server.certs['client-key']}
    nodes.extend(Node(url, redis_options=options,
                      connection_state_recovery=True) for _ in range(2))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('hi', 1)
    for c in clients:
        c.wait_for('hi')
    assert nodes[1].mgr.server_count() == 2
    assert len(nodes[0].mgr.fetch_sockets()) == 2
    assert all(n.mgr.stats()['errors'] == 0 for n in nodes)
    without = RedisStreamsManager(url, write_only=True)
    without.emit('refused', 1)
    wait_until(lambda: not without.healthy(), 5, 'no client certificate')
    without.close(timeout=0.1)
