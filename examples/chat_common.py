"""What the two chat servers (``chat.py``, Flask-SocketIO, and
``fastapi_chat.py``, FastAPI) share: the page, and what their handlers
compute; no I/O, so the same functions serve the sync and the asyncio one.
"""
import os
import socket
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, 'templates')
STATIC = os.path.join(HERE, 'static')
#: the counters the cluster panel shows
PANEL_STATS = ('published', 'delivered', 'lag', 'reconnects', 'healthy')


def label(port) -> str:
    """The server's name on the page: ``SERVER_LABEL``, else host:port."""
    return os.environ.get('SERVER_LABEL') or f'{socket.gethostname()}:{port}'


def clean(text, limit: int = 500) -> str:
    return str(text if text is not None else '').strip()[:limit]


def session(name, server: str) -> dict:
    """What a socket's session keeps (fetch_sockets finds it there)."""
    return {'name': clean(name, 40) or 'anonymous', 'server': server}


def people(sockets) -> list:
    """The page's list of who is online, from fetch_sockets' answer."""
    found = []
    for s in sockets:
        data = s.data if isinstance(s.data, dict) else {}
        found.append({'sid': s.sid, 'name': data.get('name', 'anonymous'),
                      'server': data.get('server', '?'),
                      'rooms': sorted(s.rooms)})
    return sorted(found, key=lambda p: (p['name'].lower(), p['server']))


def message(session: dict, text, server: str, **extra) -> dict:
    """A chat message as the page shows it."""
    return {'text': clean(text), 'name': session.get('name', 'anonymous'),
            'server': server, 'time': time.time(), **extra}


def ping_answer(server: str, sent_at) -> dict:
    """A server's answer to another's /ping."""
    return {'server': server, 'received': time.time(), 'sent': sent_at}


def ping_result(started: float, err, responses) -> dict:
    """/ping's result: the round trip since ``started`` (perf_counter)
    and each server's one-way delay."""
    return {'round_trip_ms': round((time.perf_counter() - started) * 1000,
                                   1),
            'timed_out': err is not None,
            'servers': [{'server': r['server'], 'one_way_ms': round(
                (r['received'] - r['sent']) * 1000, 1)}
                for r in responses if isinstance(r, dict)]}


def panel(server: str, servers: int, online: list, stats: dict) -> dict:
    """The cluster panel: servers, sockets per server, our counters and
    who is online."""
    per_server: dict = {}
    for person in online:
        per_server[person['server']] = per_server.get(person['server'], 0) + 1
    return {'server': server, 'servers': servers, 'sockets': per_server,
            'online': online,
            'stats': {key: stats[key] for key in PANEL_STATS}}
