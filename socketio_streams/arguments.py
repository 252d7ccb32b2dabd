"""Checks and conventions of callers' arguments, as python-socketio's."""
from __future__ import annotations

from typing import Any


def namespace(value: Any) -> str:
    """A caller's namespace: None is '/', as in python-socketio."""
    if value is None:
        return '/'
    if not isinstance(value, str) or not value.startswith('/'):
        raise ValueError(f'namespace must be a str starting with "/", '
                         f'got {value!r}')
    return value


def check_event(event: Any) -> None:
    if not isinstance(event, str):
        raise TypeError(f'event must be a str, got {event!r}')


def event_data(event: Any, data: Any) -> list:
    """``[event, *args]``; python-socketio's convention: a tuple is several
    arguments, None is none, anything else is one."""
    check_event(event)
    if isinstance(data, tuple):
        return [event, *data]
    return [event] if data is None else [event, data]
