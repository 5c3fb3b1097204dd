"""Taking over a dead seedbox's torrents (issue 20): its disk is gone, the shared catalog and the
shared store are not. For each torrent the other owner had: restore the newest snapshot from the
store (verified as every restore is), add the .torrent to this host's qBittorrent (which checks
the restored bytes itself before it seeds), and make this service the owner. A torrent without a
snapshot cannot come back from the store: it is named and left with its owner. Refused while the
other service still answers its heartbeat (two hosts would seed and heal one torrent), unless forced.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import fleet as rows
from ..errors import Locked

log = logging.getLogger(__name__)


@dataclass
class Adopted:
    owner: str
    adopted: list = field(default_factory=list)  # {id, name, snapshot, save_path, bytes}
    left: list = field(default_factory=list)  # {id, name, why}
    dry_run: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def adopt(catalog, store, qbt, owner: str, dest: Path | None = None, *, force: bool = False,
          dry_run: bool = False) -> Adopted:
    me = catalog.owner
    if owner == me:
        raise Locked(f"owner {owner!r}", "this service already (nothing to adopt)")
    live = rows.live_service(catalog, owner)
    if live and not force:
        raise Locked(f"owner {owner!r}", f"its service on {live['host']}, alive {live['seen_seconds_ago']:.0f} s ago"
                     " (stop it, or wait until it is gone, or --force)")
    out = Adopted(owner, dry_run=dry_run)
    for t in rows.owned_torrents(catalog, owner):
        snap = store.latest(t["id"])
        if snap is None:
            out.left.append({"id": t["id"], "name": t["name"], "why": "no snapshot in the store"})
            continue
        save = Path(dest) if dest else Path(t["save_path"] or snap.save_path)
        item = {"id": t["id"], "name": t["name"], "snapshot": snap.id, "save_path": str(save), "bytes": snap.bytes}
        if dry_run:
            out.adopted.append(item)
            continue
        meta = store.torrent_meta(snap)
        store.restore(snap.id, save)
        qbt.add_torrent(meta.raw, save, category=t["category"] or None)
        rows.set_owner(catalog, [t["id"]], me)
        catalog.set_protection(t["id"], "pending", save_path=str(save))  # this host verifies it again
        catalog.add_event(t["id"], "adopted", f"{t['name']}: adopted from {owner}: restored from snapshot"
                          f" {snap.id[:12]} into {save}", previous_owner=owner, snapshot=snap.id)
        out.adopted.append(item)
        log.info("%s: adopted from %s (snapshot %s)", t["name"], owner, snap.id[:12])
    return out
