"""The PUB/SUB side: one connection subscribed to every channel of the
server (requests, answers, acknowledgements), resubscribed on every
reconnection.

It does not poll while idle: with nothing subscribed it waits for
``add()``; subscribed (to one server), it waits for messages up to
``IDLE_POLL`` s, and channels added meanwhile wake it by a message of this
server's on one of its own channels (``add`` names it; the caller
publishes it; it is dropped as every message of ours is). A cluster's
nodes are asked in turn, every ``POLL`` s.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

from . import protocol
from .connection import initialize
from .steps import Steps
from .task_loop import Loop


class Subscriber(Loop):
    """One PUB/SUB connection for every channel; hands payloads to
    ``handle``. Channels are (re)subscribed on every (re)connection."""

    what = 'subscriber'
    #: a cluster's round of its nodes (s)
    POLL = 0.1
    #: the longest wait for a message, or for a first channel (s)
    IDLE_POLL = 5.0

    def __init__(self, connector, runtime, options, stats, log,
                 handle: Callable[[str, bytes], None]):
        super().__init__(connector, runtime, stats, log)
        self._sharded = options.use_sharded_pubsub
        self.command = 'SSUBSCRIBE' if self._sharded else 'SUBSCRIBE'
        self._handle = handle
        self._pubsub: Any = None
        self.channels: set[str] = set()
        self._subscribed: set[str] = set()
        self._pending_since = 0.0
        #: channels of this server's own, by which it is woken
        self._own: list[str] = []
        self._added = runtime.event()

    def add(self, *channels: str, own: str | None = None) -> str | None:
        """Subscribe to more channels (applied by the loop), ``own`` among
        them: a channel no other server publishes to (our private one).
        If the loop may be waiting for messages: a channel of our own it
        is subscribed to, where a message of ours wakes it (None if there
        is nothing new, or no need)."""
        new = not set(channels) <= self.channels
        if self.channels <= self._subscribed:
            self._pending_since = time.monotonic()
        # added first, then the subscriptions looked at: the loop looks
        # at what was added after it subscribed, then waits (see step)
        self.channels.update(channels)
        self._added.set()
        wake = next((c for c in self._own if c in self._subscribed), None)
        if own is not None:
            self._own.append(own)
        return wake if new else None

    def stop(self) -> None:
        super().stop()
        self._added.set()  # it may wait for a first channel

    def wait_subscribed(self, timeout: float) -> Steps[bool]:
        """Wait until every added channel was subscribed (sent: not
        confirmed), up to ``timeout`` s after the first of them was
        added: callers do not each wait that long for a Redis that does
        not answer. False at once while the connection is failing, or if
        the task is not running."""
        deadline = min(time.monotonic(), self._pending_since) + timeout
        while not self.channels <= self._subscribed:
            if time.monotonic() >= deadline or self._stopped \
                    or not self.running or self.failures:
                return False
            yield partial(self._runtime.sleep, 0.01)
        return True

    def _disconnect(self) -> Steps[None]:
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed = set()
        if pubsub is not None:
            try:  # redis.asyncio's reset() is a deprecated aclose()
                yield getattr(pubsub, 'aclose', pubsub.reset)
            except Exception as exc:  # closing is best effort
                self._log.debug('subscriber: reset failed: %r', exc)
        yield from super()._disconnect()

    def _subscribe(self, channels: list[str]) -> Steps[None]:
        pubsub = self._pubsub
        if self._sharded:
            for channel in channels:  # one SSUBSCRIBE per channel (slots)
                yield partial(pubsub.ssubscribe, channel)
        else:
            yield partial(pubsub.subscribe, *channels)
        self._subscribed.update(channels)

    def step(self) -> Steps[None]:
        if self._stopped:
            return
        if self._pubsub is None:
            # no reply timeout: it waits for messages (keepalive probes
            # notice a vanished host)
            self._client = self._connector.new_client(socket_timeout=None)
            # cut again by join() while it runs: a read that fails makes
            # redis-py connect the subscription again before it raises
            # (whatever its retries), its handshake waiting for replies
            # with no timeout
            self._used = self._client
            # an asyncio cluster client learns its slot map first
            yield from initialize(self._client)
            # subscribe confirmations are skipped by _deliver: valkey-py's
            # cluster drops every sharded message if told to ignore them
            self._pubsub = self._client.pubsub()
        new = sorted(self.channels - self._subscribed)
        if new:
            # then look again: what add() gave meanwhile found no
            # subscription to wake the loop by
            yield from self._subscribe(new)
            return
        if not self._subscribed:  # add() wakes it
            yield partial(self._runtime.wait, self._added, self.IDLE_POLL)
            self._added.clear()
            return
        pubsub, client = self._pubsub, self._client
        nodes = getattr(pubsub, 'node_pubsub_mapping', None)
        if not self._sharded or nodes is None:  # one server
            # (redis.asyncio's PubSub lacks the get_sharded_message alias)
            yield from self._deliver((yield partial(
                pubsub.get_message, timeout=self.IDLE_POLL)))
            return
        # a cluster: one subscription per node; each is asked in turn
        # (valkey-py's own round robin breaks when a node is added)
        names = list(nodes)
        for name in names:
            yield from self._deliver((yield partial(
                pubsub.get_sharded_message, timeout=self.POLL / len(names),
                target_node=client.get_node(node_name=name))))

    def _deliver(self, message: Any) -> Steps[None]:
        if message and message.get('type') in ('message', 'smessage'):
            steps = self._hand_over(
                self._handle, protocol.as_text(message['channel']),
                message['data'])
            if steps is not None:
                yield from steps
