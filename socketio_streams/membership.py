"""Who listens: ``PUBSUB NUMSUB`` and ``PUBSUB CHANNELS`` (or their
sharded forms) summed over a cluster's nodes, as steps, for either
world's clients (how servers are counted and awaited)."""
from __future__ import annotations

from functools import partial
from typing import Any

from .connection import _is_cluster, initialize, node_client
from .errors import RESPONSE_ERRORS, RETRYABLE, explain
from .steps import Steps


def _on_each_node(client: Any, command: tuple) -> Steps[list]:
    """Steps: ``command``'s reply from each node of a cluster (those that
    cannot be reached have no subscribers: skipped, unless none can), or
    from the one server. A refused command raises an error that says
    why."""
    if not _is_cluster(client):
        clients = [client]
    else:
        yield from initialize(client)
        clients = [node_client(client, node)
                   for node in client.get_nodes()]
    replies, lost = [], None
    for node in clients:
        try:
            replies.append((yield partial(node.execute_command, *command)))
        except RETRYABLE as exc:
            lost = exc
        except RESPONSE_ERRORS as exc:
            raise type(exc)(explain(exc, ' '.join(command[:2]))) from exc
    if lost is not None and not replies:
        raise lost
    return replies


def numsub(client: Any, channel: str, sharded: bool = False
           ) -> Steps[int]:
    """Steps: subscribers of ``channel`` (``PUBSUB [SHARD]NUMSUB``),
    summed over the nodes of a cluster."""
    command = ('PUBSUB', 'SHARDNUMSUB' if sharded else 'NUMSUB', channel)
    total = 0
    for reply in (yield from _on_each_node(client, command)):
        if isinstance(reply, dict):
            reply = list(reply.items())
        elif reply and not isinstance(reply[0], (list, tuple)):
            reply = list(zip(reply[::2], reply[1::2]))
        total += sum(int(n) for _, n in reply)
    return total


def channels(client: Any, pattern: str, sharded: bool = False
             ) -> Steps[set[str]]:
    """Steps: active channels matching ``pattern`` (``PUBSUB
    [SHARD]CHANNELS``), over every node of a cluster."""
    command = ('PUBSUB', 'SHARDCHANNELS' if sharded else 'CHANNELS', pattern)
    found: set[str] = set()
    for reply in (yield from _on_each_node(client, command)):
        for name in reply or ():
            found.add(name.decode() if isinstance(name, bytes) else name)
    return found
