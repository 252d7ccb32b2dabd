"""How long to wait before the next reconnection attempt."""
from __future__ import annotations

import random


class Backoff:
    """Capped exponential backoff with full jitter.

    ``compute(failures)`` gives seconds for the n-th consecutive failure
    (1-based): a random value in ``[base * 2**(n-1) / 2, base * 2**(n-1)]``,
    never above ``cap``.
    """

    def __init__(self, base: float = 0.05, cap: float = 5.0):
        self.base = base
        self.cap = cap

    def compute(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)
