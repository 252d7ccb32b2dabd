"""The manager's options: defaults, checks, one place."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

#: default of ``connection_state_recovery``'s ``max_disconnection_duration``
MAX_DISCONNECTION_DURATION = 120.0
_NAME_RE = re.compile(r'^[^\s#]+$')


@dataclass(frozen=True)
class Options:
    """Settings shared by the manager's parts; see ``RedisStreamsManager``."""
    stream_name: str = 'socket.io'
    stream_count: int = 1
    channel_prefix: str = 'socket.io'
    use_sharded_pubsub: bool = False
    max_len: int = 10_000
    read_count: int = 1000
    block_time_ms: int = 5_000
    session_key_prefix: str = 'sio:session:'
    only_plaintext: bool = False
    connection_state_recovery: Any = None
    write_only: bool = False
    buffer_size: int = 10_000
    logger: Any = None

    def __post_init__(self) -> None:
        for name in ('stream_name', 'channel_prefix', 'session_key_prefix'):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f'{name} must be a non-empty string, '
                                 f'got {value!r}')
        if not _NAME_RE.match(self.channel_prefix):
            raise ValueError('channel_prefix must not contain spaces or "#", '
                             f'got {self.channel_prefix!r}')
        for name, low in (('stream_count', 1), ('max_len', 1),
                          ('read_count', 1), ('block_time_ms', 1),
                          ('buffer_size', 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, '
                                 f'got {value!r}')
        for name in ('use_sharded_pubsub', 'only_plaintext', 'write_only'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'{name} must be True or False, '
                                 f'got {getattr(self, name)!r}')
        if self.logger is not None and not all(
                hasattr(self.logger, m) for m in ('debug', 'error')):
            raise ValueError(f'logger must be a logging.Logger, '
                             f'got {self.logger!r}')
        object.__setattr__(self, 'connection_state_recovery',
                           _recovery(self.connection_state_recovery))

    @property
    def block_seconds(self) -> float:
        return self.block_time_ms / 1000.0

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _recovery(value: Any) -> dict | None:
    """None/False -> None; True -> defaults; a dict -> checked copy."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError('connection_state_recovery must be None, a bool or '
                         f'a dict, got {value!r}')
    unknown = set(value) - {'max_disconnection_duration',
                            'skip_middlewares'}
    if unknown:
        raise ValueError('unknown connection_state_recovery keys: '
                         + ', '.join(sorted(unknown)))
    duration = value.get('max_disconnection_duration',
                         MAX_DISCONNECTION_DURATION)
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) \
            or duration <= 0:
        raise ValueError('max_disconnection_duration must be a number of '
                         f'seconds > 0, got {duration!r}')
    return {**value, 'max_disconnection_duration': float(duration)}


def default_logger() -> logging.Logger:
    return logging.getLogger('socketio_streams')
