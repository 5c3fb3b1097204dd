"""Leases: an agent working outside `job run` asks for a time-limited right to write a path.

A write to a protected path under a valid lease is intended (recorded, not healed); without one
it is drift. Drift detection asks `valid_lease_for(catalog, path)`. Only the SHA-256 of a token
is stored, so the catalog cannot be used to forge a release.

A lease can be undone: when it is granted, every protected torrent with files under its path is
snapshotted (those files; `lease_snapshots` in the catalog), so `seedward restore ID` later
brings back the torrent's exact bytes, or refuses with nothing changed. The quick-verify baseline
is only ever replaced together with a full verification against the torrent: an intended edit
that no longer matches the torrent leaves the torrent's baseline in place (the torrent is then
`baseline_bad`), so `verify` and `verify --full` agree that the file differs from its torrent.
"""

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .catalog import jobs as rows
from .catalog import trust
from .catalog.db_time import now_iso
from .errors import BadInput, NotFound

MAX_TTL = 7 * 24 * 3600
HAS_BASELINE = ("protected", "damaged", "healing")


@dataclass(frozen=True)
class Lease:
    id: str
    path: str  # absolute, symlinks resolved; a folder covers everything below it
    operator: str
    acquired_at: str
    expires_at: str
    released_at: str | None = None

    def covers(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path.rstrip(os.sep) + os.sep)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _lease(row) -> Lease:
    return Lease(row["id"], row["path"], row["operator"], row["acquired_at"], row["expires_at"], row["released_at"])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def canonical(path) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def acquire(catalog, path, ttl: float, operator: str, store=None) -> tuple[str, Lease]:
    """Grant a lease on path for ttl seconds. Returns (token, lease); the token is shown once.
    With a store, the protected torrents under the path are snapshotted first (`undo_points`)."""
    where = _checked(path, ttl, operator)
    token = "swl_" + secrets.token_urlsafe(24)
    lease_id = secrets.token_hex(6)
    expires = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat(timespec="milliseconds")
    rows.add_lease(catalog, lease_id, _digest(token), where, operator, expires)
    granted = _lease(rows.get_lease(catalog, lease_id))
    if store is not None:
        snapshot_covered(catalog, store, granted)
    return token, granted


def plan(catalog, path, ttl: float, operator: str) -> tuple[Lease, dict[str, set[int]]]:
    """What acquire() would grant (`lease acquire --dry-run`): the lease, unrecorded, and the
    cataloged files it would cover (what it would snapshot first)."""
    where = _checked(path, ttl, operator)
    now = datetime.now(timezone.utc)
    would = Lease("-", where, operator, now.isoformat(timespec="milliseconds"),
                  (now + timedelta(seconds=ttl)).isoformat(timespec="milliseconds"))
    return would, covered_files(catalog, would)


def _checked(path, ttl: float, operator: str) -> str:
    """The lease's canonical path, once its arguments are right."""
    if not (0 < ttl <= MAX_TTL):
        raise BadInput("--ttl", f"{ttl:g} seconds: expected more than 0 and at most {MAX_TTL} (7 days)")
    if not operator.strip():
        raise BadInput("--operator", "empty operator name")
    where = canonical(path)
    if not Path(where).exists():
        raise BadInput(path, "no such file or folder")
    return where


def find(catalog, token: str) -> Lease:
    """The lease a token names, unchanged (`lease release --dry-run`)."""
    row = rows.lease_by_token(catalog, _digest(token.strip()))
    if row is None:
        raise NotFound("no lease has this token")
    return _lease(row)


def covered_files(catalog, lease: Lease) -> dict[str, set[int]]:
    """torrent id -> indices of its cataloged files under the lease's path (torrents with a baseline)."""
    out: dict[str, set[int]] = {}
    for row in catalog.list_torrents(include_removed=False):
        if row["protection"] not in HAS_BASELINE or not row["save_path"]:
            continue
        for f in catalog.get_files(row["id"]):
            if lease.covers(canonical(Path(row["save_path"]) / f["path"])):
                out.setdefault(row["id"], set()).add(f["file_index"])
    return out


def snapshot_covered(catalog, store, lease: Lease) -> list[dict]:
    """Snapshot the files the lease covers, torrent by torrent, and record them as its undo points."""
    from .errors import Error
    from .locate import catalog_meta

    done = []
    covered = covered_files(catalog, lease)
    if covered and callable(store):
        store = store()  # opened only when there is something to snapshot
    for tid, indices in sorted(covered.items()):
        try:
            meta, save_path = catalog_meta(catalog, tid)
            snap = store.snapshot(meta, save_path, "manual", files=indices)
            trust.add_lease_snapshot(catalog, lease.id, tid, snap.id)
            done.append({"torrent_id": tid, "snapshot": snap.id, "files": len(indices)})
        except Error as exc:
            note = f"no snapshot: {exc}; `restore` cannot undo an edit of these files"
            trust.add_lease_snapshot(catalog, lease.id, tid, None, note)
            done.append({"torrent_id": tid, "snapshot": None, "files": len(indices), "note": note})
    return done


def undo_points(catalog, lease_id: str) -> list[dict]:
    return [dict(r) for r in trust.lease_snapshots(catalog, lease_id=lease_id)]


def release(catalog, token: str) -> Lease:
    row = rows.release_lease(catalog, _digest(token.strip()))
    if row is None:
        raise NotFound("no lease has this token")
    return _lease(rows.get_lease(catalog, row["id"]))


def valid_lease_for(catalog, path) -> Lease | None:
    """The lease that makes a write to `path` intended right now, or None (then the write is drift).

    `path` may be a file or folder; a lease on a folder covers everything below it.
    """
    where = canonical(path)
    for row in rows.open_leases(catalog, now_iso()):
        lease = _lease(row)
        if lease.covers(where):
            return lease
    return None


def leases(catalog, *, include_closed: bool = False) -> list[Lease]:
    if include_closed:
        return [_lease(r) for r in rows.list_leases(catalog)]
    return [_lease(r) for r in rows.open_leases(catalog, now_iso())]


def record_intended(catalog, manifests, meta, save_path, lease: Lease, store=None) -> str:
    """After a write under `lease`: verify the payload fully against the torrent and record it as
    intended, so no later check heals it back. Returns the torrent's protection state afterwards.

    Still matching its torrent (an edit that changed nothing the torrent covers): `protected`, the
    verification's hashes become the baseline and it is snapshotted. Otherwise `baseline_bad`
    (qBittorrent cannot seed those pieces; drift no longer watches it) while the catalog keeps the
    torrent's baseline: `verify` and `verify --full` both say the file differs, and `restore ID`
    brings the torrent's bytes back from the snapshot taken when the lease was granted.
    """
    from .manifests import torrent_manifest, torrent_relpath
    from .scan import Scanner

    cataloged = {r["file_index"] for r in catalog.get_files(meta.id)} or None
    result = Scanner().full_scan(meta, save_path, only_files=cataloged)
    state = "protected" if result.ok else "baseline_bad"
    catalog.record_scan(result, reason=f"lease {lease.id}", save_path=str(save_path), protection=state,
                        keep_baseline=result.ok)
    if result.ok:
        manifests.write(torrent_relpath(meta.id), torrent_manifest(meta, result.files),
                        f"{meta.name}: intended write under lease {lease.id} by {lease.operator}\n\ntorrent {meta.id}")
    snapshot = None
    if store is not None and result.ok:
        snapshot = store.snapshot(meta, save_path, "manual").id
    undo = [r["snapshot_id"] for r in trust.lease_snapshots(catalog, lease_id=lease.id, torrent_id=meta.id)
            if r["snapshot_id"]]
    how = (f"; `seedward restore {meta.id[:12]}` undoes it from snapshot {undo[0][:12]}" if undo and not result.ok
           else "; no snapshot was taken when the lease was granted: restore cannot undo it" if not result.ok else "")
    catalog.add_event(meta.id, "intended", f"{meta.name}: write under lease {lease.id} by {lease.operator} "
                      f"recorded ({state}: {len(result.bad_pieces)} pieces no longer match the torrent){how}",
                      lease=lease.id, operator=lease.operator, snapshot=snapshot, undo=undo[:1],
                      bad_pieces=result.bad_pieces[:100])
    return state
