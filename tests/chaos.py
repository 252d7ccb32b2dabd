"""Numbered packets under fire: count what was lost, duplicated, reordered.

Shared by the chaos tests and ``benchmarks/chaos.py`` (which runs the same
scenario against ``socketio.RedisManager`` for comparison).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Tally:
    """What every client got from every publisher."""
    expected: dict = field(default_factory=dict)  # publisher -> count
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0

    per_client: list = field(default_factory=list)

    def line(self) -> str:
        sent = sum(self.expected.values())
        return (f'sent {sent} per client, lost {self.lost}, duplicated '
                f'{self.duplicated}, reordered {self.reordered}')


def tally(received: list, expected: dict) -> Tally:
    """``received``: per client, a list of ``(publisher, n)`` in arrival
    order; ``expected``: publisher -> how many it sent (0..count-1)."""
    result = Tally(expected=dict(expected))
    for packets in received:
        result.per_client.append({})
        for publisher, count in expected.items():
            seen = [n for p, n in packets if p == publisher]
            result.per_client[-1][publisher] = len(set(seen))
            result.lost += len(set(range(count)) - set(seen))
            result.duplicated += len(seen) - len(set(seen))
            result.reordered += sum(1 for a, b in zip(seen, seen[1:])
                                    if b < a)
    return result


class Publisher(threading.Thread):
    """Emits ``(name, n)`` for n = 0, 1, ... every ``interval`` seconds."""

    def __init__(self, name: str, emit: Callable[[tuple], None],
                 duration: float, interval: float):
        super().__init__(daemon=True)
        self.name_ = name
        self.emit = emit
        self.duration = duration
        self.interval = interval
        self.sent = 0
        self.errors: list = []

    def run(self) -> None:
        start = time.monotonic()
        while time.monotonic() - start < self.duration:
            try:
                self.emit((self.name_, self.sent))
                self.sent += 1
            except Exception as exc:  # recorded: the test decides
                self.errors.append(exc)
            time.sleep(self.interval)


class Killer(threading.Thread):
    """Every ``interval`` s, ``CLIENT KILL`` every connection but its own."""

    def __init__(self, make_client: Callable, interval: float = 0.25):
        super().__init__(daemon=True)
        self.make_client = make_client
        self.interval = interval
        self.stopped = threading.Event()
        self.paused = threading.Event()
        self.kills = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            if self.paused.is_set():
                continue
            try:
                client = self.make_client()
                for kind in ('normal', 'pubsub'):
                    self.kills += client.client_kill_filter(
                        _type=kind, skipme=True)
                client.close()
            except Exception:
                pass  # the server is restarting: try again next time

    def stop(self) -> None:
        self.stopped.set()
        self.join()
