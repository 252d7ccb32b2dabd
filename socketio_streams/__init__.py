"""Many python-socketio servers acting as one, through Redis Streams."""
from .async_manager import AsyncRedisStreamsManager
from .cluster import RemoteSocket
from .exceptions import AckTimeoutError, BufferFullError, SocketIOStreamsError
from .manager import RedisStreamsManager

__version__ = '0.1.0'
__all__ = ['RedisStreamsManager', 'AsyncRedisStreamsManager',
           'RemoteSocket', 'AckTimeoutError', 'BufferFullError',
           'SocketIOStreamsError', '__version__']
