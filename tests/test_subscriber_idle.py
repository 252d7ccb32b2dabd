"""The subscriber does not poll while idle (``Subscriber.IDLE_POLL`` made
a minute here): with nothing subscribed it waits for ``add()``; waiting
for messages, it is woken for new channels by a message of this server's
on its own private channel, which it drops, unlogged. Against a real
Redis: the task alone in threads, and a server (either world) that
watches a namespace it did not know."""
from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from socketio_streams import links, protocol
from socketio_streams.connection import Connector
from socketio_streams.options import Options
from socketio_streams.runtime import Runtime
from socketio_streams.stats import Stats
from socketio_streams.steps import run
from socketio_streams.subscriber import Subscriber

from .servers import RedisProcess
from .test_publisher_steps import LOG, STANDALONE


@pytest.fixture
def no_poll(monkeypatch) -> None:
    monkeypatch.setattr(Subscriber, 'IDLE_POLL', 60.0)


def _counting(sub: Subscriber) -> list:
    """Every step the subscriber's loop makes."""
    steps: list = []
    step = sub.step

    def counted() -> Any:
        steps.append(time.monotonic())
        return step()

    sub.step = counted  # type: ignore[method-assign]
    return steps


@STANDALONE
@pytest.mark.usefixtures('no_poll')
def test_an_idle_subscriber_waits_for_add_then_for_messages(redis_server):
    got: list = []
    sub = Subscriber(Connector(redis_server.url), Runtime(), Options(),
                     Stats(), LOG, lambda channel, data: got.append(data))
    steps = _counting(sub)
    sub.start()
    try:
        time.sleep(0.3)
        assert len(steps) <= 2  # before: one per 0.1 s
        assert sub.add('a', own='a') is None  # nothing subscribed yet
        assert run(sub.wait_subscribed(2))
        time.sleep(0.3)
        before = len(steps)
        time.sleep(0.3)
        assert len(steps) == before  # waits for a message
        wake = sub.add('b', own='b')
        assert wake == 'a' and sub.add('b') is None  # nothing new
        redis_server.client().publish(wake, b'wake')  # as the links do
        assert run(sub.wait_subscribed(2)), 'not woken for a new channel'
        assert got == [b'wake']
    finally:
        sub.stop()
        assert run(sub.join(2))


@STANDALONE
def test_a_subscriber_stopped_while_waiting_for_a_channel_ends_at_once(
        redis_server, no_poll):
    sub = Subscriber(Connector(redis_server.url), Runtime(), Options(),
                     Stats(), LOG, lambda *_: None)
    sub.start()
    time.sleep(0.1)
    sub.stop()
    started = time.monotonic()
    assert run(sub.join(2)) and time.monotonic() - started < 1


@pytest.mark.usefixtures('no_poll')
def test_a_subscriber_stopped_as_redis_freezes_ends(tmp_path):
    """Stopped while it waits for messages, with Redis frozen: the read
    cut short makes redis-py connect the subscription again before it
    raises, and that handshake waits for replies with no timeout; cut
    again (``join``), it ends."""
    server = RedisProcess(str(tmp_path / 'frozen')).start()
    sub = Subscriber(Connector(server.url), Runtime(), Options(),
                     Stats(), LOG, lambda *_: None)
    sub.start()
    try:
        sub.add('a', own='a')
        assert run(sub.wait_subscribed(2))
        time.sleep(0.1)  # it waits for messages
        server.freeze()
        sub.stop()
        assert run(sub.join(3))
    finally:
        server.thaw()
        sub.stop()
        run(sub.join(5))
        server.stop()


@STANDALONE
@pytest.mark.usefixtures('no_poll')
@pytest.mark.parametrize('sharded', [False, True])
def test_a_namespace_watched_later_is_subscribed_when_watch_returns(
        redis_server, make_node, clients, caplog, sharded):
    """The server waits for messages on the channels of its namespaces; a
    namespace it did not know is watched (as its first connection does):
    its channels are subscribed when the watch returns (the wake is
    ours, dropped: nothing skipped, nothing logged)."""
    node = make_node(use_sharded_pubsub=sharded)
    clients.append(node.client(['/']))
    time.sleep(0.3)  # the subscriber waits for messages
    caplog.set_level(logging.WARNING, logger='socketio_streams')
    node.drive(node.mgr._links.watch('/later'))
    admin = redis_server.client()
    numsub = admin.pubsub_shardnumsub if sharded else admin.pubsub_numsub
    prefix = node.mgr.options.channel_prefix
    found = numsub(protocol.public_channel(prefix, '/later'),
                   protocol.private_channel(prefix, '/later', node.mgr.uid))
    assert [count for _, count in found] == [1, 1], 'not subscribed yet'
    time.sleep(0.1)  # the wake has come back
    stats = node.mgr.stats()
    assert stats['skipped'] == 0 and stats['errors'] == 0
    assert not caplog.records, caplog.text


class _PubSub:
    """A subscription that notes the calls; ``during`` runs while the
    first SUBSCRIBE is sent (another thread's ``add()``)."""

    def __init__(self, during: Any) -> None:
        self.calls: list = []
        self._during = during

    def subscribe(self, *channels: str) -> None:
        self.calls.append(channels)
        during, self._during = self._during, None
        if during is not None:
            during()

    def get_message(self, timeout: float) -> None:
        self.calls.append('wait')


def test_channels_added_while_it_subscribes_are_subscribed_before_it_waits():
    """``add()`` that comes while the loop sends its SUBSCRIBE finds no
    subscription yet to wake it by: the loop looks again before it waits
    for messages (no I/O)."""
    sub = Subscriber(Connector('redis://127.0.0.1:1/0'), Runtime(),
                     Options(), Stats(), LOG, lambda *_: None)
    woken: list = []
    pubsub = _PubSub(lambda: woken.append(sub.add('b', own='b')))
    sub._pubsub, sub._client = pubsub, object()
    sub.add('a', own='a')
    for _ in range(3):
        run(sub.step())
    assert pubsub.calls == [('a',), ('b',), 'wait']
    assert woken == [None]


@STANDALONE
@pytest.mark.usefixtures('no_poll')
def test_a_full_buffer_does_not_hold_or_fail_a_watch(make_node, clients,
                                                     monkeypatch):
    """The wake is best effort: a publisher with no room takes none, and
    the watch (a first connection) neither waits for room nor fails;
    it waits ``SUBSCRIBE_WAIT`` at most, as for a Redis that does not
    answer."""
    node = make_node()
    clients.append(node.client(['/']))
    time.sleep(0.3)  # the subscriber waits for messages
    publisher = node.mgr._links.publisher
    monkeypatch.setattr(publisher, 'offer', lambda item: False)  # full
    started = time.monotonic()
    node.drive(node.mgr._links.watch('/later'))
    assert time.monotonic() - started < links.SUBSCRIBE_WAIT + 1
