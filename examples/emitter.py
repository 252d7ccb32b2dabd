"""Emit to the clients of every server from a process that is not a server
(a worker, a cron job)::

    REDIS_URL=redis://localhost:6379/0 python examples/emitter.py "hello"
"""
import os
import sys

from socketio_streams import RedisStreamsManager

mgr = RedisStreamsManager(os.environ.get('REDIS_URL',
                                         'redis://localhost:6379/0'),
                          write_only=True)
mgr.emit('said', {'text': ' '.join(sys.argv[1:]) or 'ping',
                  'server': 'emitter'})
mgr.close()  # flush: returns once Redis has the packet
