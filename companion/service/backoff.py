"""Bounded exponential backoff with jitter (reconnects never hammer qBittorrent)."""

import random


class Backoff:
    def __init__(self, first: float = 1.0, limit: float = 60.0, factor: float = 2.0, jitter: float = 0.1,
                 rnd=random.random):
        self.first, self.limit, self.factor, self.jitter, self.rnd = first, limit, factor, jitter, rnd
        self.failures = 0

    def next(self) -> float:
        """The delay before the next try; each call doubles it, up to the limit."""
        delay = min(self.limit, self.first * self.factor ** self.failures)
        self.failures += 1
        return max(0.0, min(self.limit, delay * (1 + self.jitter * (2 * self.rnd() - 1))))

    def reset(self) -> None:
        self.failures = 0
