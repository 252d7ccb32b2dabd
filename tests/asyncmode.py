"""The async mode the tests run under: ``SIO_ASYNC_MODE`` = threading
(default), eventlet or gevent.

Imports only ``os`` and ``warnings``, so that ``tests/conftest.py`` can
monkey patch the standard library before anything imports socket,
threading or redis.
"""
from __future__ import annotations

import os
import warnings

MODES = ('threading', 'eventlet', 'gevent')
ASYNC_MODE = os.environ.get('SIO_ASYNC_MODE') or 'threading'
if ASYNC_MODE not in MODES:
    raise RuntimeError(f'SIO_ASYNC_MODE={ASYNC_MODE!r}: use one of '
                       f'{", ".join(MODES)}')


def monkey_patch() -> None:
    """Patch the standard library for eventlet or gevent (threading: no)."""
    if ASYNC_MODE == 'eventlet':
        # hypothesis would load its plugins, trio's among them (selenium
        # brings trio), and trio does not import over eventlet's sockets
        os.environ.setdefault('HYPOTHESIS_NO_PLUGINS', '1')
        with warnings.catch_warnings():  # "Eventlet is deprecated": known
            warnings.simplefilter('ignore')
            import eventlet
        eventlet.monkey_patch()
    elif ASYNC_MODE == 'gevent':
        from gevent import monkey
        monkey.patch_all()
