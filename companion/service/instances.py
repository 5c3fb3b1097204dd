"""The service's side of several qBittorrent instances (issue 17).

`Syncs` is `service.sync`: one sync loop per instance behind the one loop's API (snapshot, get,
state, error, answering, listeners, after_sync), views merged per torrent hash over the instances
holding it (companion/instances.py). `status_fields` adds every instance and, per torrent, where it
is and why it is unreachable.
"""

import logging

from ..catalog import reach as reach_rows
from ..instances import merged_view
from ..loops import Backoff
from ..states import UNREACHABLE
from .reachable import hint
from .sync import SyncLoop

log = logging.getLogger(__name__)

STATE_ORDER = ("login_failed", "unreachable", "not_answering", "error", "connecting", "connected")


class InstanceSync(SyncLoop):
    """The sync loop of one instance."""

    def __init__(self, service, instance, syncs: "Syncs"):
        super().__init__(service)
        self.instance = instance
        self.qbt = instance.qbt
        qs = instance.settings
        self.poll_seconds = qs.poll_seconds
        self.backoff = Backoff(1.0, qs.backoff_max_seconds)
        self.listeners = syncs.listeners
        self.after_sync = syncs.after_sync
        self.syncs_facade = syncs

    def view(self, h: str, t: dict) -> dict:
        if not self.syncs_facade.several:
            return t
        return self.syncs_facade.get(h) or t

    def event_fields(self) -> dict:
        return {"instance": self.instance.name} if self.syncs_facade.several else {}

    def owns(self, row) -> bool:
        if not self.syncs_facade.several:
            return True
        inst = row["instance"] if "instance" in row.keys() else ""
        return inst == self.instance.name or (not inst and self.instance.index == 0)

    @property
    def name(self) -> str:
        return f"sync-{self.instance.name}"


class Syncs:
    """service.sync: every instance's sync loop as one."""

    def __init__(self, service, instances):
        self.service = service
        self.instances = list(instances)
        self.listeners: list = []
        self.after_sync: list = []
        self.several = len(self.instances) > 1
        self.loops = [InstanceSync(service, inst, self) for inst in self.instances]
        for inst, loop in zip(self.instances, self.loops):
            inst.view = loop.get
            if self.several:  # one instance: every call goes to it, as before
                inst.connected = lambda loop=loop: loop.connected

    def __getattr__(self, name):  # the one loop's other fields (tests read audit_at, backoff, rid)
        if name.startswith("__") or name in ("loops",):
            raise AttributeError(name)
        return getattr(self.loops[0], name)

    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    def join(self, timeout: float = 30.0) -> None:
        for loop in self.loops:
            loop.join(timeout)

    def loop(self, name: str) -> InstanceSync | None:
        return next((loop for loop in self.loops if loop.instance.name == name), None)

    # views

    def get(self, h: str) -> dict | None:
        if not self.several:
            return self.loops[0].get(h)
        return merged_view([(loop.instance, v) for loop in self.loops if (v := loop.get(h)) is not None])

    def snapshot(self) -> dict[str, dict]:
        if not self.several:
            return self.loops[0].snapshot()
        by_hash: dict[str, list] = {}
        for loop in self.loops:
            for h, t in loop.snapshot().items():
                by_hash.setdefault(h, []).append((loop.instance, t))
        return {h: merged_view(views) for h, views in by_hash.items()}

    # state

    @property
    def state(self) -> str:
        states = [loop.state for loop in self.loops]
        return min(states, key=lambda s: STATE_ORDER.index(s) if s in STATE_ORDER else 0)

    @property
    def error(self) -> str | None:
        if not self.several:
            return self.loops[0].error
        errors = [f"{loop.instance.name}: {loop.error}" for loop in self.loops if loop.error]
        return "; ".join(errors) or None

    @property
    def answering(self) -> bool:
        return all(loop.answering for loop in self.loops)

    @property
    def connected(self) -> bool:
        return all(loop.connected for loop in self.loops)

    @property
    def syncs(self) -> int:
        return sum(loop.syncs for loop in self.loops)

    def per_instance(self) -> list[dict]:
        out = []
        for loop in self.loops:
            inst, qbt = loop.instance, loop.instance.qbt
            out.append({"name": inst.name, "url": qbt.url, "state": loop.state, "version": qbt.version or None,
                        "error": loop.error, "syncs": loop.syncs, "torrents": len(loop.live),
                        "login": qbt.login_status(), "path_map": qbt.path_map.to_json(),
                        "hook_dir": str(inst.hook_dir) if inst.hook_dir else None})
        return out


def status_fields(service, status: dict) -> None:
    """status: every instance, and per torrent where it is (several instances) and why it is unreachable."""
    svc = status.setdefault("service", {})
    svc["instances"] = service.sync.per_instance()
    several = len(service.instances) > 1
    unreachable = reach_rows.unreachable_entries(service.catalog) if any(
        t.get("protection") == UNREACHABLE for t in status.get("torrents", [])) else {}
    names = reach_rows.instances(service.catalog) if several else {}
    live = service.sync
    for entry in status.get("torrents", []):
        tid = entry["id"]
        if several:
            view = live.get(tid)
            entry["instance"] = (view or {}).get("instance") or names.get(tid) or None
            entry["instances"] = (view or {}).get("instances", [])
            if view and view.get("copies"):
                entry["copies"] = view["copies"]
        u = unreachable.get(tid)
        if u is not None and entry.get("protection") == UNREACHABLE:
            entry["unreachable"] = {"since": u["since"], "save_path": u["save_path"], "reason": u["reason"],
                                    "hint": hint(service, entry.get("instance"))}
