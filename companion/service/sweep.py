"""The location sweep: qBittorrent reports no event for a file renamed inside a torrent, so
every `sweep_minutes` each protected torrent's file list is compared with the catalog's,
on its own thread, one API call per torrent."""

import logging
import threading

from ..errors import Error
from ..qbt import is_complete

log = logging.getLogger(__name__)


class LocationSweep:
    def __init__(self, service):
        self.service = service
        self._thread: threading.Thread | None = None
        self.sweeps = 0

    def trigger(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self.run, name="sweep", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        s = self.service
        try:
            for h, t in s.sync.snapshot().items():
                if s.stopping.is_set():
                    return
                if not is_complete(t):
                    continue
                row = s.catalog.get_torrent(h)
                if row is None or row["protection"] not in ("protected", "damaged", "healing"):
                    continue
                cataloged = {f["path"] for f in s.catalog.get_files(h)}
                names = {f["name"] for f in s.qbt.files(h)}
                if names != cataloged:
                    s.enqueue("protect", h, reason="renamed")
        except Error as exc:
            log.warning("location sweep stopped: %s", exc)
        finally:
            self.sweeps += 1
