"""``socketio-streams``: look at a cluster's streams and servers from a shell.

    socketio-streams [--url URL] streams      # per stream: length, ids,
                                              # memory, readers, groups
    socketio-streams [--url URL] servers      # live servers per namespace
    socketio-streams [--url URL] tail [--json] [--last N] [--count N]
                                      [--from-start]
    socketio-streams [--url URL] sockets [--namespace NS] [--json]
    socketio-streams [--url URL] emit EVENT JSON [--to ROOM] [--namespace NS]
"""
from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import sys
import time
from typing import Any, Iterator

from . import groups, positions, protocol
from .connection import Connector
from .membership import channels
from .errors import RESPONSE_ERRORS, RETRYABLE
from .exceptions import AckTimeoutError
from .manager import RedisStreamsManager
from .protocol import MessageType, ProtocolError
from .steps import run

DEFAULT_URL = 'redis://localhost:6379/0'


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
              f'{protocol.as_text(first[0]) if first else "-"}, last '
              f'{protocol.as_text(last[0]) if last else "-"}, '
              f'{info.get("entries-added", "?")} added in all, '
              f'{memory / 1024:.1f} KiB, consumer groups {groups}')
        for line in [*reader_lines(client, key),
                     *group_lines(client, key, info['last-generated-id'])]:
            print(f'  {line}')
    return 0


def group_lines(client: Any, stream: str, last: Any) -> list[str]:
    """One line per readers' consumer group (see :mod:`.groups`): where
    it is, the entries it has not been given (Redis >= 7), and whether it
    is a server gone's; the other groups, counted."""
    try:
        found = client.xinfo_groups(stream)
    except RESPONSE_ERRORS as exc:  # an ACL without XINFO GROUPS
        return [f'consumer groups: not read ({exc})']
    lines, others = [], 0
    for group in found:
        name = protocol.as_text(group['name'])
        if not name.startswith(groups.PREFIX):
            others += 1
            continue
        at = protocol.as_text(group['last-delivered-id'])
        lag = group.get('lag')
        gone = groups.id_ms(last) - groups.id_ms(at) > groups.FORGET * 1000
        lines.append(f'group of {name[len(groups.PREFIX):]}: at {at}, '
                     f'{"?" if lag is None else lag} entries not read'
                     + (': a server gone (the next reader to set its group '
                        'up destroys it)' if gone else ''))
    if others:
        lines.append(f'{others} other consumer group(s)')
    return lines


#: entries behind a reader counted at most (one XRANGE of that many)
BEHIND_COUNTED = 1000


def reader_lines(client: Any, stream: str) -> list[str]:
    """One line per reader's position reported beside ``stream`` (see
    :mod:`.positions`): where it is, how many entries it has to read, how
    long ago it said so."""
    name = positions.key(stream)
    try:
        size = client.hlen(name)
    except RESPONSE_ERRORS as exc:  # not a hash, an ACL without HLEN
        return [f'{name}: not read ({exc})']
    if size > positions.MAX_READERS:
        return [f'{name}: {size} fields, more than {positions.MAX_READERS}'
                f' readers\' positions: not read (publishers do not either)']
    reply = client.hgetall(name)
    if not reply:
        return ['no reader has reported its position (Node\'s do not)']
    now = time.time()
    found: list[tuple[str, str | None, float]] = []
    for field, text in sorted(reply.items()):
        uid = field.decode(errors='replace') if isinstance(field, bytes) \
            else str(field)
        try:
            found.append((uid, *positions.parse(text, now)))
        except (ValueError, UnicodeDecodeError):
            found.append((uid, None, 0.0))
    pipe = client.pipeline(transaction=False)  # what each has to read
    for _, last_id, _ in found:
        if last_id is not None:
            pipe.xrange(stream, last_id, count=BEHIND_COUNTED + 2)
    ahead = iter(pipe.execute())
    lines = []
    for uid, last_id, age in found:
        if last_id is None:
            lines.append(f'{uid!r}: not a reader\'s position (publishers '
                         f'delete it)')
            continue
        behind = sum(protocol.as_text(e[0]) != last_id for e in next(ahead))
        count = str(behind) if behind <= BEHIND_COUNTED else \
            f'over {BEHIND_COUNTED}'
        state = '' if abs(age) <= positions.STALE else \
            ': stale, not waited for' if abs(age) <= positions.FORGET else \
            ': forgotten (publishers delete it)'
        lines.append(f'reader {uid}: at {last_id}, {count} entries behind, '
                     f'reported {age:.1f} s ago{state}')
    return lines


def live_servers(client: Any, args: argparse.Namespace) -> dict[str, set]:
    """Namespace -> uids of the servers subscribed to its channels."""
    found = run(channels(client, f'{args.channel_prefix}#*',
                         args.use_sharded_pubsub))
    servers: dict[str, set] = {}
    for channel in found:
        parts = channel[len(args.channel_prefix) + 1:].split('#')
        if len(parts) == 3 and parts[2] == '':
            servers.setdefault(parts[0], set()).add(parts[1])
        elif len(parts) == 2:
            servers.setdefault(parts[0], set())
    return servers


def cmd_servers(client: Any, args: argparse.Namespace) -> int:
    servers = live_servers(client, args)
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


def _entries(client: Any, last: dict[str, str],
             block_ms: int) -> Iterator[tuple[str, str, Any]]:
    """Entries after ``last`` (stream -> ID), as they come, forever."""
    while True:
        for key, entries in client.xread(last, count=100,
                                         block=block_ms) or ():
            for entry_id, fields in entries:
                last[protocol.as_text(key)] = protocol.as_text(entry_id)
                yield protocol.as_text(key), protocol.as_text(entry_id), fields


def _backlog(client: Any, keys: list[str], count: int,
             last: dict[str, str]) -> list[tuple[str, str, Any]]:
    """The last ``count`` entries of each stream, oldest first; ``last``
    gets each stream's newest ID (``0-0`` for none), where following
    starts: nothing written meanwhile is missed, as it would be with
    ``$``."""
    shown = []
    for key in keys:
        rows = client.xrevrange(key, count=max(count, 1))
        last[key] = protocol.as_text(rows[0][0]) if rows else '0-0'
        shown += [(key, protocol.as_text(i), f)
                  for i, f in reversed(rows[:count])]
    return shown


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


def tail_keys(args: argparse.Namespace) -> list[str]:
    if args.stream_count > 1:
        return [f'{args.stream_name}-{i}'
                for i in range(-(args.stream_count - 1), args.stream_count)]
    return [protocol.stream_key(args.stream_name, 1, '/')]


def _print_entry(key: str, entry_id: str, fields: Any,
                 as_json: bool) -> None:
    try:
        message: protocol.Message | None = protocol.decode_entry(fields)
    except ProtocolError as exc:
        message, error = None, str(exc)
    if as_json:
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


def cmd_tail(client: Any, args: argparse.Namespace) -> int:
    """Print entries: with ``--from-start`` every entry kept, with
    ``--last N`` the newest N, then each new one as it comes; ``--count``
    stops after that many printed in all."""
    keys = tail_keys(args)
    last = dict.fromkeys(keys, '0-0')
    backlog = [] if args.from_start else \
        _backlog(client, keys, args.last, last)
    names = ', '.join(repr(k) for k in keys)
    what = ('every entry kept, then ' if args.from_start else
            f'the last {args.last} entries, then ' if args.last else '')
    until = f'stopping after {args.count}; ' if args.count else ''
    print(f'tail: {what}waiting for new entries on {names} ({until}'
          'Ctrl-C to stop)', file=sys.stderr, flush=True)
    shown = 0
    for key, entry_id, fields in itertools.chain(
            backlog, _entries(client, last, 1000)):
        _print_entry(key, entry_id, fields, args.json)
        shown += 1
        if args.count and shown >= args.count:
            return 0
    return 0  # pragma: no cover - the loop only ends by count or ^C


def emitter(args: argparse.Namespace) -> Any:
    """A write_only manager on the cluster the options name."""
    return RedisStreamsManager(
        args.url, write_only=True, stream_name=args.stream_name,
        stream_count=args.stream_count, channel_prefix=args.channel_prefix,
        use_sharded_pubsub=args.use_sharded_pubsub,
        redis_options={'socket_connect_timeout': 3})


def cmd_sockets(client: Any, args: argparse.Namespace) -> int:
    """Every socket of the namespace (fetch_sockets), by the server that
    holds it, with each server's rooms and the cluster's."""
    mgr = emitter(args)
    try:
        count = mgr.server_count(args.namespace)
        try:
            sockets = mgr.fetch_sockets(namespace=args.namespace,
                                        timeout=args.timeout)
            error = None
        except AckTimeoutError as exc:
            sockets, error = exc.responses, str(exc)
        live = live_servers(client, args).get(args.namespace, set())
    finally:
        mgr.close(timeout=1)
    report = by_server(sockets, live - {mgr.uid})
    report = {'namespace': args.namespace, 'server_count': count,
              'socket_count': len(sockets), **report, 'error': error}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_sockets(report)
    return 1 if error else 0


def by_server(sockets: list, live: set) -> dict:
    """``servers``: uid -> its ``sockets`` and ``rooms`` (room -> sids),
    for the live servers and those sockets were found on; ``rooms``: the
    cluster's rooms (a socket's own sid left out)."""
    servers: dict = {uid: {'sockets': [], 'rooms': {}} for uid in live}
    everywhere: dict = {}
    for s in sorted(sockets, key=lambda s: s.sid):
        rooms = sorted(r for r in s.rooms if r != s.sid)
        server = servers.setdefault(s.server, {'sockets': [], 'rooms': {}})
        server['sockets'].append({
            'sid': s.sid, 'namespace': s.namespace, 'rooms': rooms,
            'address': s.handshake.get('address'),
            'via': (s.handshake.get('headers') or {}).get('host'),
            'data': _plain(s.data), 'handshake': _plain(s.handshake)})
        for room in rooms:
            server['rooms'].setdefault(room, []).append(s.sid)
            everywhere.setdefault(room, []).append(s.sid)
    return {'servers': dict(sorted(servers.items())),
            'rooms': dict(sorted(everywhere.items()))}


def _room_lines(rooms: dict, indent: str) -> list[str]:
    return [f'{indent}room {room}: {len(sids)} socket(s): {", ".join(sids)}'
            for room, sids in sorted(rooms.items())]


def print_sockets(report: dict) -> None:
    error = f' ({report["error"]})' if report['error'] else ''
    lines = [f'{report["namespace"]}: {report["socket_count"]} socket(s) '
             f'on {report["server_count"]} server(s){error}']
    for uid, server in report['servers'].items():
        lines.append(f'server {uid}: {len(server["sockets"])} socket(s)')
        lines += [f'  {s["sid"]}  via {s["via"]}  from {s["address"]}  '
                  f'rooms: {", ".join(s["rooms"]) or "-"}'
                  for s in server['sockets']]
        lines += _room_lines(server['rooms'], '  ')
    if report['rooms']:
        lines.append('rooms of the cluster:')
        lines += _room_lines(report['rooms'], '  ')
    print('\n'.join(lines))


def cmd_emit(client: Any, args: argparse.Namespace) -> int:
    """Emit an event to the cluster's clients, through the stream."""
    data = args.data
    mgr = emitter(args)
    sent = False
    try:
        mgr.emit(args.event, data, to=args.to, namespace=args.namespace)
        sent = mgr.flush(args.timeout)
    finally:
        mgr.close(timeout=1 if sent else 0)
    if not sent:  # OSError: reported as Redis unreachable
        raise TimeoutError(f'the emit was not written within '
                           f'{args.timeout} s')
    if args.json:
        print(json.dumps({'event': args.event, 'data': data,
                          'to': args.to, 'namespace': args.namespace,
                          'sent': True}, ensure_ascii=False))
    else:
        print(f'sent {args.event!r} to {", ".join(args.to or ["everyone"])}'
              f' in {args.namespace}')
    return 0


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f'{text!r} is not JSON ({exc})')


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
    start = tail.add_mutually_exclusive_group()
    start.add_argument('--last', type=int, default=0, metavar='N',
                       help='first print the newest N entries already in '
                            'the stream(s)')
    tail.add_argument('--count', type=int, default=0, metavar='N',
                      help='stop after printing N entries in all (those of '
                           '--last or --from-start included); default: '
                           'follow until Ctrl-C')
    start.add_argument('--from-start', action='store_true',
                       help='begin with the oldest entry kept')
    sockets = sub.add_parser(
        'sockets', help='every socket of the cluster, by server and room '
        '(fetch_sockets)')
    emit = sub.add_parser(
        'emit', help='emit an event to clients, as a write_only manager')
    emit.add_argument('event', help='the event name')
    emit.add_argument('data', metavar='JSON', type=json_value,
                      help='its argument, as JSON (a list is one argument)')
    emit.add_argument('--to', action='append', metavar='ROOM',
                      help='a room or sid (repeat for several); default: '
                           'every client')
    for command in (sockets, emit):
        command.add_argument('--namespace', default='/')
        command.add_argument('--json', action='store_true',
                             help='print JSON')
        command.add_argument('--timeout', type=float, default=5.0,
                             help='seconds to wait for servers / Redis')
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {'streams': cmd_streams, 'servers': cmd_servers,
                'tail': cmd_tail, 'sockets': cmd_sockets, 'emit': cmd_emit}
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
