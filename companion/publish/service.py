"""Companion torrents inside `seedward serve`: the embedded seeder and the continuity watch.

`register(service)` (found by service.features) adds one component that
- seeds every companion published with `--seed-with embedded` from an in-process libtorrent session;
- polls both swarms of every original with companions and emits `parity` once per companion
  (an offer to retire the original; nothing is ever retired, stopped or removed).
Control op `seed_companion` (`{"id": companion id}`) makes it pick up a new companion at once.
"""

import logging
from pathlib import Path

from ..catalog import jobs as rows
from ..errors import Error
from ..loops import Loop
from . import EmbeddedSeeder

log = logging.getLogger(__name__)

CONTINUITY_SECONDS = 600.0


class CompanionComponent:
    def __init__(self, service, *, every: float = CONTINUITY_SECONDS):
        self.service = service
        self.every = every
        listen = service.settings.jobs.embedded_listen
        extra = {"listen_interfaces": listen}
        if not listen.startswith("127."):
            extra["outgoing_interfaces"] = ""
        self.seeder = EmbeddedSeeder(**extra)
        self.loop: Loop | None = None

    def start(self) -> None:
        self.refresh()
        self.loop = Loop("continuity", self._observe, self.every, first_wait=True).start()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        self.seeder.stop()

    def refresh(self) -> int:
        """Seed every embedded companion not yet seeded. Returns how many are seeded."""
        for comp in rows.list_companions(self.service.catalog, seeded_by="embedded"):
            if comp["id"] in self.seeder.handles:
                continue
            try:
                self.seeder.seed(Path(comp["torrent_file"]).read_bytes(), Path(comp["content_path"]))
            except (OSError, RuntimeError, Error) as exc:
                log.error("companion %s: cannot seed it: %s", comp["id"][:12], exc)
        return len(self.seeder.handles)

    def _observe(self) -> None:
        from ..continuity import observe

        try:
            observe(self.service.catalog, self.service.qbt, self.service.settings.jobs.parity_copies, emit=self._emit)
        except Error as exc:
            log.warning("continuity: %s", exc)

    def _emit(self, kind, torrent_id, message, **detail):
        self.service.emit(kind, torrent_id, message, **detail)

    def op_seed(self, message: dict) -> dict:
        count = self.refresh()
        return {"seeding": count, "port": self.seeder.port}


def register(service) -> None:
    component = CompanionComponent(service)
    service.add_component(component)
    service.register_op("seed_companion", component.op_seed, schema={
        "type": "object", "required": ["op"], "additionalProperties": False,
        "properties": {"op": {"type": "string"}, "id": {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"}}})
