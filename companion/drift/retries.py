"""Drift that could not be handled (a full disk, an unreadable store, qBittorrent away, an error)
is tried again with backoff until it is: `Retries` keeps, per torrent, when and which files.
A heal no source could make (no snapshot, no peer) is tried now and then (`slow`), not soon."""

import threading
import time
from dataclasses import dataclass

from ..loops import Backoff

RETRY_FIRST, RETRY_MAX = 2.0, 300.0  # seconds
SLOW_FIRST, SLOW_MAX = 600.0, 6 * 3600.0


@dataclass
class Retry:
    due: float  # monotonic
    backoff: Backoff
    why: str
    files: set | None  # None: every file
    slow: bool = False


class Retries:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_torrent: dict[str, Retry] = {}

    def later(self, tid: str, why: str, files: set | None = None, slow: bool = False) -> None:
        with self.lock:
            r = self.by_torrent.get(tid)
            if r is None or slow:
                backoff = Backoff(SLOW_FIRST, SLOW_MAX) if slow else Backoff(RETRY_FIRST, RETRY_MAX)
                r = self.by_torrent[tid] = Retry(0.0, backoff, why, files if r is None else r.files, slow)
            elif files is None or r.files is None:
                r.files = None
            else:
                r.files |= files
            r.why = why
            r.due = time.monotonic() + r.backoff.next()

    def now(self, tid: str, why: str) -> None:
        """Every file, as soon as possible (invariant checks, reconciliation)."""
        with self.lock:
            r = self.by_torrent.get(tid)
            if r is None:
                self.by_torrent[tid] = Retry(time.monotonic(), Backoff(RETRY_FIRST, RETRY_MAX), why, None)
            else:
                r.files, r.due = None, min(r.due, time.monotonic())

    def done(self, tid: str) -> None:
        with self.lock:
            self.by_torrent.pop(tid, None)

    def due(self, skip=frozenset()) -> list[tuple[str, Retry]]:
        """The retries due now (not for torrents in `skip`); each is pushed back by its backoff, so a
        try that fails too comes later."""
        now = time.monotonic()
        with self.lock:
            out = [(tid, r) for tid, r in self.by_torrent.items() if r.due <= now and tid not in skip]
            for _tid, r in out:
                r.due = now + r.backoff.next()
        return out

    def next_due(self) -> float | None:
        with self.lock:
            return min((r.due for r in self.by_torrent.values()), default=None)

    def pending(self, slow: bool = False) -> bool:
        """Any retry (with slow: the slow ones too) waiting."""
        with self.lock:
            return any(slow or not r.slow for r in self.by_torrent.values())

    def __contains__(self, tid: str) -> bool:
        with self.lock:
            return tid in self.by_torrent

    def status(self) -> dict:
        now = time.monotonic()
        with self.lock:
            return {tid: {"in_seconds": round(max(0.0, r.due - now), 1), "why": r.why, "slow": r.slow}
                    for tid, r in self.by_torrent.items()}
