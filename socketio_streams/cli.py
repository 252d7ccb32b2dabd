"""``socketio-streams``: look at a cluster's streams and servers from a shell.

    socketio-streams [--url URL] streams      # length, ids, memory per stream
    socketio-streams [--url URL] servers      # live servers per namespace
    socketio-streams [--url URL] tail [--json] [--count N] [--from-start]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any, Iterator

from . import protocol
from .connection import RESPONSE_ERRORS, RETRYABLE, Connector, channels
from .protocol import MessageType, ProtocolError

DEFAULT_URL = 'redis://localhost:6379/0'


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_keys(client: Any, name: str, count: int) -> list[str]:
    """The manager's stream keys that exist (negative indexes included:
    Node writes namespaces whose hash is negative there)."""
    if count <= 1:
        candidates = [name]
    else:
        candidates = [f'{name}-{i}' for i in range(-(count - 1), count)]
    return [key for key in candidates if client.exists(key)]


def cmd_streams(client: Any, args: argparse.Namespace) -> int:
    keys = stream_keys(client, args.stream_name, args.stream_count)
    if not keys:
        print(f'no stream named {args.stream_name!r} yet')
    for key in keys:
        info = client.xinfo_stream(key)
        first, last = info.get('first-entry'), info.get('last-entry')
        memory = client.memory_usage(key) or 0
        groups = info.get('groups', 0)
        print(f'{key}: {info["length"]} entries, first '
              f'{_text(first[0]) if first else "-"}, last '
              f'{_text(last[0]) if last else "-"}, '
              f'{info.get("entries-added", "?")} added in all, '
              f'{memory / 1024:.1f} KiB, consumer groups {groups} '
              f'(readers use XREAD: no server-side lag to report)')
    return 0


def cmd_servers(client: Any, args: argparse.Namespace) -> int:
    found = channels(client, f'{args.channel_prefix}#*',
                     args.use_sharded_pubsub)
    servers: dict[str, set] = {}
    for channel in found:
        parts = channel[len(args.channel_prefix) + 1:].split('#')
        if len(parts) == 3 and parts[2] == '':
            servers.setdefault(parts[0], set()).add(parts[1])
        elif len(parts) == 2:
            servers.setdefault(parts[0], set())
    if not servers:
        print(f'no server listening on {args.channel_prefix}#*')
    for namespace in sorted(servers):
        uids = sorted(servers[namespace])
        print(f'{namespace}: {len(uids)} server(s): {", ".join(uids)}')
    return 0


def _plain(value: Any) -> Any:
    """JSON-ready: bytes become ``{"$base64": ...}``."""
    if isinstance(value, (bytes, bytearray)):
        return {'$base64': base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _entries(client: Any, keys: list[str], start: str,
             block_ms: int) -> Iterator[tuple[str, str, Any]]:
    last = dict.fromkeys(keys, start)
    while True:
        for key, entries in client.xread(last, count=100,
                                         block=block_ms) or ():
            for entry_id, fields in entries:
                last[_text(key)] = _text(entry_id)
                yield _text(key), _text(entry_id), fields


def describe(message: protocol.Message) -> str:
    """One readable line for a decoded message."""
    try:
        name = MessageType(message.type).name
    except ValueError:
        name = f'type {message.type}'
    data = message.data if isinstance(message.data, dict) else {}
    parts = [f'{name:18} {message.nsp:8} from {message.uid}']
    if 'packet' in data:
        packet = data['packet']
        event = packet.get('data') if isinstance(packet, dict) else packet
        parts.append(json.dumps(_plain(event), ensure_ascii=False)[:200])
    if isinstance(data.get('opts'), dict):
        opts = data['opts']
        parts.append(f'rooms={opts.get("rooms")} except={opts.get("except")}')
    if 'rooms' in data:
        parts.append(f'-> {data["rooms"]}')
    return '  '.join(parts)


def cmd_tail(client: Any, args: argparse.Namespace) -> int:
    keys = [protocol.stream_key(args.stream_name, args.stream_count, '/')]
    if args.stream_count > 1:
        keys = [f'{args.stream_name}-{i}'
                for i in range(-(args.stream_count - 1), args.stream_count)]
    shown = 0
    for key, entry_id, fields in _entries(
            client, keys, '0-0' if args.from_start else '$', 1000):
        try:
            message = protocol.decode_entry(fields)
        except ProtocolError as exc:
            message = None
            error = str(exc)
        if args.json:
            record: dict = {'stream': key, 'id': entry_id}
            if message is None:
                record['error'] = error
            else:
                record.update(type=message.type, nsp=message.nsp,
                              uid=message.uid, data=_plain(message.data))
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            text = describe(message) if message else f'undecodable: {error}'
            print(f'{entry_id} {key}  {text}', flush=True)
        shown += 1
        if args.count and shown >= args.count:
            return 0
    return 0  # pragma: no cover - the loop only ends by count or ^C


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='socketio-streams',
        description='Inspect the Redis streams and servers of a '
                    'socketio-streams (or Node redis-streams-adapter) '
                    'cluster.')
    p.add_argument('--url', default=os.environ.get('REDIS_URL', DEFAULT_URL),
                   help='Redis URL (default: $REDIS_URL, then %(default)s)')
    p.add_argument('--stream-name', default='socket.io')
    p.add_argument('--stream-count', type=int, default=1)
    p.add_argument('--channel-prefix', default='socket.io')
    p.add_argument('--use-sharded-pubsub', action='store_true')
    sub = p.add_subparsers(dest='command', required=True)
    sub.add_parser('streams', help='each stream: length, ids, memory')
    sub.add_parser('servers', help='live servers per namespace')
    tail = sub.add_parser('tail', help='follow entries, decoded')
    tail.add_argument('--json', action='store_true',
                      help='one JSON object per line')
    tail.add_argument('--count', type=int, default=0,
                      help='stop after this many entries')
    tail.add_argument('--from-start', action='store_true',
                      help='begin with the oldest entry kept')
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {'streams': cmd_streams, 'servers': cmd_servers,
                'tail': cmd_tail}
    try:
        connector = Connector(args.url, redis_options={
            'socket_connect_timeout': 3})
        client = connector.client()
        client.ping()
        return commands[args.command](client, args)
    except ValueError as exc:
        print(f'socketio-streams: {exc}', file=sys.stderr)
    except RETRYABLE as exc:
        print(f'socketio-streams: cannot reach Redis at '
              f'{connector.describe()}: {exc}', file=sys.stderr)
    except RESPONSE_ERRORS as exc:
        print(f'socketio-streams: Redis refused: {exc}', file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2
