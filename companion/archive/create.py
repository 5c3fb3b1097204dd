"""`archive create`: stage snapshots, write encrypted 7z volumes, PAR2, the set manifest, upload.

The set is built in the outbox first and recorded in the catalog as `local`; it becomes `uploaded`
only after its manifest reached the remote. If the upload fails the set stays in the outbox (nothing
lost) and the next `archive create` uploads it before making a new one; rclone skips the files that
already arrived, so an interrupted upload resumes.
"""

import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import archives as records
from ..errors import Locked
from ..manifests import atomic_write
from . import par2
from .contents import select, stage
from .errors import ArchiveError, RemoteError
from .remote import SET_MANIFEST, Remote, set_metadata
from .retention import SetInfo, tier_on_create
from .setmanifest import FORMAT, INNER_NAME, public_manifest
from .sevenzip import Entry, sha256_file, write_archive
from .tiers import FULL_TIERS, TIERS, RetentionPolicy, size_class

log = logging.getLogger(__name__)


def archive_root(home) -> Path:
    return home.root / "archive"


def new_set_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class CreateResult:
    set_id: str
    tier: str
    requested: str
    promoted: str
    full: bool
    uploaded: bool
    remote: str
    members: int
    bytes: int
    archive_bytes: int
    volumes: int
    par2: dict
    protection: dict
    skipped: list
    resumed: list
    error: str = ""
    dry_run: bool = False
    seconds: dict | None = None  # wall-clock seconds per phase

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _clean_outbox(home, catalog) -> None:
    """Drop what a crashed run left in the outbox and staging: only sets recorded as waiting stay."""
    waiting = {r["set_id"] for r in records.list_sets(catalog, ("local",))}
    for sub in ("outbox", "staging"):
        folder = archive_root(home) / sub
        for d in folder.iterdir() if folder.is_dir() else ():
            if d.name not in waiting or sub == "staging":
                log.warning("removing %s left by an interrupted archive run", d)
                shutil.rmtree(d, ignore_errors=True)


def _set_infos(rows: list[dict]) -> list[SetInfo]:
    return [SetInfo(r["set_id"], r["tier"], datetime.fromisoformat(r["created_at"]), True, r["requested"])
            for r in rows]


def upload_pending(cat, remote: Remote) -> list[str]:
    """Upload sets left in the outbox by an earlier failed or interrupted upload."""
    done = []
    for row in records.list_sets(cat, ("local",)):
        if row["remote"] != remote.dest:
            continue
        local = Path(row["local_path"])
        if not (local / SET_MANIFEST).is_file():
            log.warning("set %s: outbox folder %s is gone; marking it lost", row["set_id"], local)
            records.update_set(cat, row["set_id"], state="lost", error="outbox folder missing")
            continue
        remote.upload_set(local, row["tier"], row["set_id"], set_metadata(row["manifest"]))
        records.update_set(cat, row["set_id"], state="uploaded", local_path=None, error=None)
        shutil.rmtree(local, ignore_errors=True)
        done.append(row["set_id"])
    return done


def create_set(*, home, settings, catalog, manifests, store, tier: str, remote: Remote | None, passphrase: str,
               dry_run: bool = False, now: datetime | None = None, check_remote: bool = True) -> CreateResult:
    if tier not in TIERS:
        raise ArchiveError(tier, f"unknown tier (one of {', '.join(TIERS)})")
    cfg = settings.archive
    now = now or datetime.now(timezone.utc)
    policy = RetentionPolicy.from_settings(cfg)
    resumed = []
    if remote is not None and not dry_run and check_remote:
        remote.check()  # a remote that is down fails here, before anything is built
        resumed = upload_pending(catalog, remote)

    if not dry_run:
        _clean_outbox(home, catalog)
    earlier = records.list_sets(catalog)
    actual, promoted = tier_on_create(tier, now, _set_infos(earlier))
    full = tier in FULL_TIERS
    previous = records.last_set(catalog)
    sel = select(catalog, manifests.repo, store, full, previous)
    set_id = new_set_id(now)
    root = archive_root(home)
    staging = root / "staging" / set_id
    outbox = root / "outbox" / set_id
    if dry_run:
        snaps = {tid: store.latest(tid) for tid in sel.torrents}
        skipped = [{"torrent_id": t, "reason": "no snapshot in the store"} for t, s in snaps.items() if s is None]
        return CreateResult(set_id, actual, tier, promoted, sel.full, False, remote.dest if remote else "",
                            sum(s.files for s in snaps.values() if s), sum(s.bytes for s in snaps.values() if s),
                            0, 0, {}, {}, skipped, [], dry_run=True)
    clock = _Phases()
    early = None
    try:
        staged = stage(sel, catalog, manifests.repo, store, home, staging)
        clock.lap("stage")
        volume_size = cfg.volume_mb * 1024 * 1024 if not cfg.volume_kb else cfg.volume_kb * 1024
        doc = {
            "format": FORMAT, "set_id": set_id, "tier": actual, "requested": tier, "promoted": promoted,
            "full": sel.full, "why": sel.why, "base_set": None if sel.full else previous["set_id"],
            "created": now.isoformat(),  # full precision: dailies compare snapshot times with it
            "retain_until": policy.retain_until(actual, now).isoformat(timespec="seconds"),
            "manifests_commit": sel.head, "deleted_manifests": sel.deleted_manifests,
            "volume_size": volume_size, "members": staged.members, "skipped": staged.skipped,
        }
        entries = list(staged.entries)

        volumes = write_archive(entries, outbox, set_id, volume_size, passphrase,
                                trailer=lambda: (INNER_NAME, _inner_doc(doc, entries)))
        clock.lap("7z")
        # the volumes are final: send them while PAR2 and the hashes are computed (the manifest still goes last)
        early = _Background(remote.upload_volumes, outbox, actual, set_id, set_metadata(doc)) if remote else None
        shutil.rmtree(staging, ignore_errors=True)
        archive_bytes = sum((outbox / v).stat().st_size for v in volumes)
        cls = size_class(actual, archive_bytes)
        strategy = par2.StrategySettings.from_settings(cfg)
        sets = par2.create(outbox, set_id, volumes, volume_size, cls.redundancy, strategy)
        clock.lap("par2")
        guarantee = par2.guarantee(sets.layout, len(volumes), sets.blocks_per_volume, cls.redundancy, sets.block_size)
        par2_files = sorted(p.name for p in outbox.iterdir() if p.suffix == ".par2")
        doc["volumes"] = [{"name": v, "size": (outbox / v).stat().st_size, "sha256": sha256_file(outbox / v)}
                          for v in volumes]
        doc["par2"] = {
            "strategy": sets.layout.strategy, "size_class": cls.name, "redundancy": cls.redundancy,
            "block_size": sets.block_size, "blocks_per_volume": sets.blocks_per_volume,
            "window": sets.layout.window, "slide": sets.layout.slide,
            "sets": [{"name": n, "volumes": list(v)} for n, v in zip(sets.names, sets.layout.sets)],
            "files": [{"name": n, "size": (outbox / n).stat().st_size, "sha256": sha256_file(outbox / n)}
                      for n in par2_files],
        }
        doc["protection"] = guarantee.to_json()
        total = archive_bytes + sum(f["size"] for f in doc["par2"]["files"])
        atomic_write(outbox / SET_MANIFEST, (json.dumps(public_manifest(doc), indent=2, sort_keys=True) + "\n").encode())
        clock.lap("hash")
    except BaseException:
        if early is not None:
            early.wait()
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(outbox, ignore_errors=True)
        raise

    dest = remote.dest if remote else ""
    records.add_set(catalog, {
        "set_id": set_id, "tier": actual, "requested": tier, "full": int(sel.full), "base_set": doc["base_set"],
        "created_at": doc["created"], "retain_until": doc["retain_until"], "remote": dest, "state": "local",
        "manifests_commit": sel.head, "bytes": staged.bytes, "archive_bytes": total, "local_path": str(outbox),
        "manifest": doc,
    })
    result = CreateResult(set_id, actual, tier, promoted, sel.full, False, dest, len(staged.members), staged.bytes,
                          total, len(volumes), {k: doc["par2"][k] for k in ("strategy", "size_class", "redundancy")},
                          doc["protection"], staged.skipped, resumed, seconds=clock.laps)
    if remote is None:
        result.error = "no remote configured: the set waits in the outbox"
        return result
    try:
        early.join()
        remote.upload_set(outbox, actual, set_id, set_metadata(doc))
    except RemoteError as exc:
        records.update_set(catalog, set_id, error=str(exc))
        result.error = f"{exc}; the set is kept at {outbox} and the next `archive create` uploads it"
        return result
    clock.lap("upload")
    records.update_set(catalog, set_id, state="uploaded", local_path=None, error=None)
    shutil.rmtree(outbox, ignore_errors=True)
    result.uploaded = True
    return result


class _Background:
    """Run fn(*args) on a thread; join() re-raises what it raised."""

    def __init__(self, fn, *args):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to join()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Phases:
    def __init__(self):
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._t, 3)
        log.info("archive create: %s done in %.1fs", name, now - self._t)
        self._t = now


def _inner_doc(doc: dict, entries: list[Entry]) -> bytes:
    by_path = {e.arcname: e.sha256 for e in entries}
    for m in doc["members"]:
        m["sha256"] = by_path[m["path"]]
    inner = {k: doc[k] for k in ("format", "set_id", "tier", "requested", "full", "base_set", "created",
                                 "manifests_commit", "deleted_manifests", "members", "skipped")}
    return (json.dumps(inner, indent=2, sort_keys=True) + "\n").encode()


@contextmanager
def archive_lock(home):
    """One archive create or prune at a time per state home."""
    root = archive_root(home)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Locked(root, "another `seedward archive` run") from exc
        yield
    finally:
        os.close(fd)
