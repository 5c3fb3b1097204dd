"""Background loops: the one helper for every periodic thread, and the backoff their retries use.

    loop = Loop("drill-schedule", self.tick, every=60.0)
    loop.start()          # a daemon thread: tick(), wait, tick(), ... until stop()
    loop.wake()           # run the next step now
    loop.stop()           # ask it to end, wait (bounded) for the step in progress

A step returns None (wait `every`) or the seconds to wait before the next one. A step that raises
is logged, never kills the thread, and waits `backoff.next()` before the next try (no spinning);
the first step that succeeds resets the backoff.
"""

import logging
import random
import threading

log = logging.getLogger(__name__)


class Backoff:
    """Bounded exponential backoff with jitter (reconnects never hammer qBittorrent)."""

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


class Loop:
    def __init__(self, name: str, step, every: float, *, first_wait: bool = False, backoff: Backoff | None = None,
                 stopping: threading.Event | None = None, wake: threading.Event | None = None):
        """step() -> None | seconds until the next step. first_wait: wait `every` before the first
        step. stopping: an event that also ends the loop (e.g. the service's). wake: an event that
        ends a wait early, shared by several loops (e.g. job workers woken by a new job)."""
        self.name = name
        self.step = step
        self.every = every
        self.first_wait = first_wait
        self.backoff = backoff or Backoff(1.0, max(1.0, every))
        self.stopping = stopping or threading.Event()
        self._wake = wake or threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Loop":
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self._wake.set()
        self.join(timeout)

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return  # go on at once (and leave a wake for a loop that waits)
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:
        if self.first_wait:
            self._wait(self.every)
        while not self.stopping.is_set():
            try:
                wait = self.step()
                self.backoff.reset()
            except Exception:  # a broken step must neither spin nor kill the loop
                wait = self.backoff.next()
                log.exception("%s: step failed; next try in %.1fs", self.name, wait)
            if self.stopping.is_set():
                return
            self._wait(self.every if wait is None else wait)
