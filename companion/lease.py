"""Leases: an agent working outside `job run` asks for a time-limited right to write a path.

A write to a protected path under a valid lease is intended (re-cataloged, new snapshot, no heal);
without one it is drift. Drift detection asks `valid_lease_for(catalog, path)`.
Only the SHA-256 of a token is stored, so the catalog cannot be used to forge a release.
"""

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .catalog import jobs as rows
from .catalog.db_time import now_iso
from .errors import BadInput, NotFound

MAX_TTL = 7 * 24 * 3600


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


def acquire(catalog, path, ttl: float, operator: str) -> tuple[str, Lease]:
    """Grant a lease on path for ttl seconds. Returns (token, lease); the token is shown once."""
    if not (0 < ttl <= MAX_TTL):
        raise BadInput("--ttl", f"{ttl:g} seconds: expected more than 0 and at most {MAX_TTL} (7 days)")
    if not operator.strip():
        raise BadInput("--operator", "empty operator name")
    where = canonical(path)
    if not Path(where).exists():
        raise BadInput(path, "no such file or folder")
    token = "swl_" + secrets.token_urlsafe(24)
    lease_id = secrets.token_hex(6)
    expires = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat(timespec="milliseconds")
    rows.add_lease(catalog, lease_id, _digest(token), where, operator, expires)
    return token, _lease(rows.get_lease(catalog, lease_id))


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
    """After a write under `lease`: make the new content the catalog's baseline, so no later check
    (once the lease has ended) heals it back, and snapshot it when the payload still matches its
    torrent. Returns the torrent's protection state afterwards.

    An in-place edit of a payload file no longer matches the torrent's piece hashes: the torrent
    is then `baseline_bad` (qBittorrent cannot seed those pieces), which keeps drift from healing the
    intended change; the store only keeps payloads that match their torrent, so no snapshot then.
    """
    from .manifests import torrent_manifest, torrent_relpath
    from .scan import Scanner

    result = Scanner().full_scan(meta, save_path)
    state = "protected" if result.ok else "baseline_bad"
    catalog.record_scan(result, reason=f"lease {lease.id}", save_path=str(save_path), protection=state,
                        keep_baseline=True)
    manifests.write(torrent_relpath(meta.id), torrent_manifest(meta, result.files),
                    f"{meta.name}: intended write under lease {lease.id} by {lease.operator}\n\ntorrent {meta.id}")
    snapshot = None
    if store is not None and result.ok:
        snapshot = store.snapshot(meta, save_path, "manual").id
    catalog.add_event(meta.id, "intended", f"{meta.name}: write under lease {lease.id} by {lease.operator} "
                      f"re-cataloged ({state})", lease=lease.id, operator=lease.operator, snapshot=snapshot,
                      bad_pieces=result.bad_pieces[:100])
    return state
