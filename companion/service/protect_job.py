"""The "protect" job: bring one qBittorrent torrent's protection up to date.

Idempotent, so a replayed job (crash, hook + sync for the same torrent) does no second hash:
a cataloged payload whose files are unchanged by stat (size, mtime, inode, device) is only
followed to its new paths; anything else is fully verified against the torrent's own hashes.

With a guard (the drift monitor; drift/service.py registers the job with it) the torrent's
content is watched before the verifying read starts, and the read is only accepted when no
write landed on its files meanwhile (otherwise it is read again once they are quiet). A first
verification that finds pieces no longer matching a torrent qBittorrent downloaded itself (and so
verified piece by piece) is drift, not a bad baseline: the guard heals it from the swarm.

A save path this host cannot reach (a qBittorrent in a container without path_map, a disk not
mounted) makes the torrent `unreachable`, with the setting to look at; nothing is read or written
there until it is back (service/reachable.py).
"""

import logging
import os
import time
from pathlib import Path

from .. import ownpaths
from ..catalog import locations
from ..catalog.reach import set_instance
from ..errors import BadInput, Error
from ..ladder.wants import full_snapshot_refused
from ..locate import located_meta, wanted_files
from ..manifests import atomic_write, torrent_manifest, torrent_relpath
from ..protect import catalog_torrent, skipped_note
from ..qbt import QbtNotFound, is_complete
from ..scan import FileStat
from ..states import HAS_BASELINE, STATES, TAG_PREFIX, split_tags, state_tag  # noqa: F401 - also used from here
from ..torrent import load_torrent

from .reachable import note_unreachable, reachable_again, unreachable_why

log = logging.getLogger(__name__)

VERIFY_TRIES = 5  # reads overlapped by writes before the job gives up for now (it is queued again)
QUIET_SECONDS = 0.5  # after an overlapping write: how long the files must be quiet before reading again


class StillChanging(Error):
    """{}: its files kept changing during {} verifying reads; it stays pending and is verified again later"""


def set_state_tag(qbt, torrent_id: str, state: str, current: list[str]) -> None:
    """Make qBittorrent's seedward:<state> tag mirror the protection state."""
    stale = [state_tag(s) for s in STATES if s != state and state_tag(s) in current]
    if stale:
        qbt.remove_tags(torrent_id, stale)
    if state_tag(state) not in current:
        qbt.add_tags(torrent_id, [state_tag(state)])


def kept_torrent(service, torrent_id: str):
    """The torrent's metadata: the kept .torrent, else exported from qBittorrent and kept."""
    path = service.home.torrents / f"{torrent_id}.torrent"
    if path.exists():
        return load_torrent(path), path
    raw = service.qbt.export(torrent_id)
    meta = load_torrent(raw, source=f"qBittorrent's export of {torrent_id}")
    if meta.id != torrent_id:
        raise BadInput(torrent_id, f"qBittorrent exported a different torrent ({meta.id})")
    atomic_write(path, raw)
    return meta, path


def unchanged_files(catalog, meta, save_path: Path, torrent_id: str, wanted: set[int] | None = None) -> dict | None:
    """{file index: (path, FileStat)} when every wanted file (default: all) is cataloged and there
    unchanged, else None."""
    rows = {r["file_index"]: r for r in catalog.get_files(torrent_id)}
    out = {}
    for entry in meta.real_files:
        if wanted is not None and entry.index not in wanted:
            continue
        row = rows.get(entry.index)
        if row is None:
            return None
        try:
            st = FileStat.of(os.stat(save_path / entry.path))
        except OSError:
            return None
        if (st.size, st.mtime_ns, st.inode, st.device) != (row["size"], row["mtime_ns"], row["inode"], row["device"]):
            return None
        out[entry.index] = (entry.path, st)
    return out


def protect_torrent(service, job, guard=None) -> None:
    try:
        _protect(service, job, guard)
    except QbtNotFound:
        log.info("%s: removed from qBittorrent during protection", job.torrent_id)


def drifted_after_completion(t: dict, result) -> bool:
    """A payload that does not match, of a torrent qBittorrent downloaded itself (it verified each
    piece it wrote) or whose files were written after qBittorrent's completion time: drift."""
    if int(t.get("downloaded") or 0) > 0:
        return True
    done = int(t.get("completion_on") or 0)
    if done <= 0:
        return False
    return any(f.stat is not None and f.stat.mtime_ns > (done + 1) * 10**9 for f in result.files if f.status != "ok")


def _wait_quiet(guard, h: str, cancel) -> float:
    """Until no event for the torrent's files for QUIET_SECONDS (bounded); returns the new start."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        since = time.monotonic()
        if cancel is not None and cancel.wait(QUIET_SECONDS):
            break
        if cancel is None:
            time.sleep(QUIET_SECONDS)
        if not guard.changed_since(h, since):
            return since
    return time.monotonic()


def _protect(service, job, guard=None) -> None:
    h = job.torrent_id
    qbt, cat = service.qbt, service.catalog
    reason = job.payload.get("reason", "added")
    t = qbt.torrent(h)
    if t is None:
        log.info("%s: gone from qBittorrent before protection", h)
        return
    if not is_complete(t):
        log.debug("%s: not complete yet (%s); protected when it completes", h, t.get("state"))
        return
    tags = split_tags(t.get("tags", ""))
    category = t.get("category") or ""
    policy = service.settings.protection.policy_for(category, tags)
    meta, torrent_file = kept_torrent(service, h)
    save_path = Path(t["save_path"])
    fields = {"category": category, "tags": ",".join(x for x in tags if not x.startswith(TAG_PREFIX)),
              "policy": policy.level, "qbt_state": t.get("state", "")}
    row = cat.get_torrent(h)

    if policy.level == "exclude":
        if row is None or row["protection"] != "excluded":
            cat.upsert_torrent(meta, save_path=str(save_path), torrent_file=str(torrent_file),
                               protection="excluded", **fields)
            service.emit("excluded", h, f"{meta.name}: excluded by policy", policy=policy.level)
        set_state_tag(qbt, h, "excluded", tags)
        return

    why = unreachable_why(service, h, save_path)
    if why:
        if row is None:
            cat.upsert_torrent(meta, save_path=str(save_path), torrent_file=str(torrent_file), **fields)
        note_unreachable(service, h, meta.name, save_path, why, instance=t.get("instance"))
        return
    if row is not None and row["protection"] == "unreachable":
        reachable_again(service, h, save_path)
        row = cat.get_torrent(h)
    if t.get("instance") and (row is None or row["instance"] != t["instance"]):
        if row is None:
            cat.upsert_torrent(meta, save_path=str(save_path), torrent_file=str(torrent_file), **fields)
        set_instance(cat, h, t["instance"])  # several instances: the one that speaks for it
        row = cat.get_torrent(h)
    qbt_files = qbt.files(h)
    located = located_meta(meta, qbt_files)
    wanted = wanted_files(meta, qbt_files)
    own = ownpaths.reason(service.home, service.settings, [save_path / f.path for f in located.real_files])
    if own:  # seedward's own files (its home, store, quarantine, scratch) are never payload
        if row is None or row["protection"] != "excluded":
            cat.upsert_torrent(meta, save_path=str(save_path), torrent_file=str(torrent_file),
                               protection="excluded", **fields)
            service.emit("excluded", h, f"{meta.name}: excluded: {own}", reason=own)
        set_state_tag(qbt, h, "excluded", tags)
        return
    if row is not None and row["protection"] == "excluded":
        cat.set_protection(h, "pending")  # a new baseline, not a drift against an old one
        row = cat.get_torrent(h)
    if row is not None and row["protection"] in HAS_BASELINE and not job.payload.get("force"):
        same = unchanged_files(cat, located, save_path, h, wanted)
        if same is not None:
            follow(service, located, row, save_path, same, fields, reason)
            set_state_tag(qbt, h, row["protection"], tags)
            return
        if row["protection"] != "protected":
            log.info("%s: %s; left to drift and heal", h, row["protection"])
            return

    # Under a snapshot policy the verifying pass also computes the chunk ids (v1 torrents have none
    # of their own): the snapshot job then copies verified, unchanged files without hashing them.
    since = guard.begin_verify(h, t.get("content_path") or save_path) if guard is not None else 0.0
    first = not cat.get_files(h)  # no baseline yet: a mismatch may be drift since qBittorrent completed it

    def accept(result):
        if guard is not None and guard.changed_since(h, since):
            return False  # a write overlapped the read: read again
        if not result.ok and first and guard is not None and drifted_after_completion(t, result):
            return "damaged"
        return True

    for _attempt in range(VERIFY_TRIES):
        result = catalog_torrent(cat, service.manifests, located, save_path, reason=reason, scanner=service.scanner,
                                 torrent_file=str(torrent_file), rate=service.read_rate, cancel=job.cancel,
                                 chunk_roots=policy.level == "snapshot", only_files=wanted, accept=accept, **fields)
        if result is not None:
            break
        log.info("%s: a write landed during its verification; reading it again once it is quiet", h[:12])
        since = _wait_quiet(guard, h, job.cancel)
    else:
        raise StillChanging(meta.name, VERIFY_TRIES)
    state = cat.get_torrent(h)["protection"]
    if guard is not None:
        if state == "damaged" and first:
            set_state_tag(qbt, h, state, tags)
            guard.respond_unverified(located, save_path, result)
            return
        guard.verified(h, since)
    set_state_tag(qbt, h, state, tags)
    if result.ok:
        service.emit("protected", h, f"{meta.name}: verified against its torrent and cataloged"
                     + skipped_note(meta, result), record=False, reason=reason, bytes=result.bytes_read)
        if "snapshot" in service.job_kinds and full_snapshot_refused(cat, service.settings, cat.get_torrent(h)) is None:
            service.enqueue("snapshot", h, reason="auto")  # level snapshot, or auto for a small torrent (ladder/wants.py)
    else:
        service.emit(state, h, f"{meta.name}: payload does not match its torrent ({len(result.bad_pieces)} bad "
                     "pieces); not kept as a baseline", level="error", record=False,
                     bad_pieces=result.bad_pieces[:100])


def follow(service, located, row, save_path: Path, same: dict, fields: dict, reason: str) -> None:
    """The payload is unchanged: follow renames and moves, refresh qBittorrent's fields."""
    cat, h = service.catalog, located.id
    old_paths = {f["file_index"]: f["path"] for f in cat.get_files(h)}
    moved = str(save_path) != (row["save_path"] or "") or any(old_paths.get(i) != p for i, (p, _st) in same.items())
    locations.set_qbt_fields(cat, h, **fields)
    if moved:
        locations.relocate(cat, h, str(save_path), same)
    # Rewriting the manifest is a no-op when nothing changed; after a crash it completes the record.
    service.manifests.write(torrent_relpath(h), torrent_manifest(located, cat.get_files(h)),
                            f"{located.name}: files at {save_path} ({reason})\n\ntorrent {h}")
    if moved:
        service.emit("relocated", h, f"{located.name}: followed to {save_path} without re-hashing",
                     save_path=str(save_path), reason=reason)
