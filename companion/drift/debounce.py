"""Debounce: act on a key once it has been quiet for `quiet` seconds (pure; the caller supplies time)."""


class Debouncer:
    def __init__(self, quiet: float, longest: float | None = None):
        self.quiet = quiet
        # A file written continuously is still checked after `longest` seconds.
        self.longest = longest if longest is not None else max(10 * quiet, 5.0)
        self.last: dict = {}
        self.first: dict = {}

    def touch(self, key, now: float) -> None:
        self.last[key] = now
        self.first.setdefault(key, now)

    def _deadline(self, key) -> float:
        return min(self.last[key] + self.quiet, self.first[key] + self.longest)

    def due(self, now: float) -> list:
        """Keys whose wait is over, oldest first; they are forgotten."""
        ready = sorted((k for k in self.last if self._deadline(k) <= now), key=lambda k: self.first[k])
        for key in ready:
            del self.last[key], self.first[key]
        return ready

    def next_deadline(self) -> float | None:
        return min((self._deadline(k) for k in self.last), default=None)

    def pending(self, key) -> bool:
        return key in self.last
