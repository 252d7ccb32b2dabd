"""Redis errors, by class and in words: which are worth retrying, and
what a refusal means to the person who must fix it. Either client
library's (redis-py, valkey-py); no I/O."""
from __future__ import annotations

from typing import Any

import redis.exceptions

#: errors of a connection (retry), and error replies, in either client
RETRYABLE: tuple = (redis.exceptions.ConnectionError,
                    redis.exceptions.TimeoutError, OSError)
RESPONSE_ERRORS: tuple = (redis.exceptions.ResponseError,)
#: a cluster client's errors about the cluster (no node reachable, a slot
#: not covered during a failover): retried like a lost connection
CLUSTER_ERRORS: tuple = (redis.exceptions.RedisClusterException,
                         redis.exceptions.ClusterError)
#: a command the client library refuses before sending it (an argument it
#: cannot encode): it would be refused again, whatever the connection
REFUSED_LOCALLY: tuple = (redis.exceptions.DataError, TypeError, ValueError)
try:  # the valkey client has its own exception tree
    import valkey.exceptions
    REFUSED_LOCALLY += (valkey.exceptions.DataError,)
    RETRYABLE += (valkey.exceptions.ConnectionError,
                  valkey.exceptions.TimeoutError)
    RESPONSE_ERRORS += (valkey.exceptions.ResponseError,)
    CLUSTER_ERRORS += (valkey.exceptions.ValkeyClusterException,
                       valkey.exceptions.ClusterError)
except ImportError:  # pragma: no cover - valkey is optional
    pass

#: error replies that go away by themselves (out of memory, loading, a
#: replica that was a master, a cluster failing over or resharding...)
TRANSIENT = ('OOM', 'LOADING', 'READONLY', 'MASTERDOWN', 'TRYAGAIN',
             'CLUSTERDOWN', 'BUSY', 'NOREPLICAS', 'MOVED', 'ASK')
#: the client classes of those replies (redis-py and valkey-py drop the
#: code from the message of the errors they have a class for)
_TRANSIENT_CLASSES = {
    'OutOfMemoryError', 'BusyLoadingError', 'ReadOnlyError',
    'MasterDownError', 'TryAgainError', 'ClusterDownError', 'MovedError',
    'AskError', 'SlotNotCoveredError'}
#: the Redis version each optional command appeared in
_INTRODUCED = {'SPUBLISH': '7.0', 'SSUBSCRIBE': '7.0',
               'PUBSUB SHARDNUMSUB': '7.0', 'PUBSUB SHARDCHANNELS': '7.0'}


def transient(error: Any) -> bool:
    """True for an error worth retrying as it is: a lost connection, or a
    reply that goes away by itself (see ``TRANSIENT``). False for a refusal
    that would repeat (WRONGTYPE, NOPERM, an unknown command)."""
    if not isinstance(error, Exception):
        return False
    if isinstance(error, RETRYABLE) or type(error).__name__ in \
            _TRANSIENT_CLASSES:
        return True
    code = getattr(error, 'status_code', None) or \
        str(error).split(' ', 1)[0]
    return str(code).upper() in TRANSIENT


def refusal(error: Exception) -> str | None:
    """'permission' for an ACL without the command, 'unknown' for a
    Redis that does not know it; None for any other error."""
    lowered = str(error).lower()
    code = str(getattr(error, 'status_code', '') or '').upper()
    if code == 'NOPERM' or 'noperm' in lowered or \
            'no permissions' in lowered or \
            type(error).__name__ == 'NoPermissionError':
        return 'permission'
    if 'unknown command' in lowered or 'unknown subcommand' in lowered:
        return 'unknown'
    return None


def why(error: BaseException) -> str:
    """``Type: message`` for log lines (redis-py 8's ``repr`` of its
    errors drops the message, e.g. why a certificate was refused)."""
    return f'{type(error).__name__}: {error}'


def explain(error: Exception, command: str, where: str = '') -> str:
    """A refusal in words that say what to do: a missing permission names
    the command refused, an unknown command the Redis version it needs."""
    text = str(error)
    where = f' {where}' if where else ''
    kind = refusal(error)
    if kind == 'permission':
        return (f'Redis{where} refused {command}: the user lacks a '
                f'permission ({text}); grant it (README.rst, "Security '
                f'considerations", gives the ACL rule)')
    if kind == 'unknown':
        name = command.split(' ', 1)[0].upper()
        sub = ' '.join(command.upper().split()[:2])
        since = _INTRODUCED.get(sub) or _INTRODUCED.get(name)
        need = f'; it needs Redis >= {since}' if since else ''
        return (f'Redis{where} does not know {command} ({text}){need}'
                + (' (use_sharded_pubsub=True needs it)' if since else ''))
    return f'Redis{where} refused {command}: {text}'
