"""The event bus: listeners by event name, events kept in the catalog and pushed to subscribers.

A listener that raises is logged and skipped, never fatal (beets' plugin rule).
"""

import logging
import queue
import threading
from collections import defaultdict

from ..catalog.db_time import now_iso

log = logging.getLogger(__name__)

SUBSCRIBER_BACKLOG = 1000


class EventBus:
    def __init__(self, catalog):
        self.catalog = catalog
        self._handlers = defaultdict(list)
        self._subscribers: set[queue.Queue] = set()
        self._lock = threading.Lock()

    def on(self, kind: str, fn) -> None:
        """Call fn(event) for every event of this kind ("*": every event)."""
        with self._lock:
            self._handlers[kind].append(fn)

    def emit(self, kind: str, torrent_id: str | None = None, message: str = "", *, level: str = "info",
             record: bool = True, **data) -> dict:
        """Publish an event. record=False when the catalog already has it (protect.py records its own)."""
        event_id = self.catalog.add_event(torrent_id, kind, message or kind, level=level, **data) if record else None
        event = {"event": kind, "id": event_id, "torrent_id": torrent_id, "at": now_iso(), "level": level,
                 "message": message or kind, **data}
        log.log(_LEVELS.get(level, logging.INFO), "%s%s", f"{torrent_id[:12]} " if torrent_id else "", event["message"])
        with self._lock:
            handlers = list(self._handlers.get(kind, ())) + list(self._handlers.get("*", ()))
            subscribers = list(self._subscribers)
        for fn in handlers:
            try:
                fn(event)
            except Exception:
                log.exception("listener %r for %r failed; skipped", fn, kind)
        for q in subscribers:
            try:
                q.put_nowait(event)
            except queue.Full:
                self.unsubscribe(q)
                q.queue.clear()
                q.put_nowait(None)  # tells the connection it was dropped
        return event

    def subscribe(self) -> queue.Queue:
        q = queue.Queue(SUBSCRIBER_BACKLOG)
        with self._lock:
            self._subscribers.add(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._subscribers.discard(q)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
