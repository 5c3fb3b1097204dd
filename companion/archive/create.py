"""`archive create`: stage snapshots, write encrypted 7z volumes, PAR2, the set manifest, upload.

The set is built in the outbox first and recorded in the catalog as `local`; it becomes `uploaded`
only after its manifest reached the remote. If the upload fails the set stays in the outbox (nothing
lost) and the next `archive create` uploads it before making a new one; rclone skips the files that
already arrived, so an interrupted upload resumes.

With the 7-Zip command (sevenzip_tool), the payload is first written out of the store (verified
chunks, each file's SHA-256 checked), then 7z writes two archives: `SET.7z.NNN` (media, stored as
is) and `SET-z.7z.NNN` (the compressible rest: manifests, catalog, .torrent files, text), each volume
hashed while 7z writes the next. Without it, py7zr streams the chunks into one archive `SET.7z.NNN`.
Either way the volumes upload while PAR2 is computed over them; the manifest goes last.

Just over 400 lines on purpose: the set is one transaction (stage, write, PAR2, manifest, upload)
whose cleanup on failure must see every step; 7-Zip, PAR2 and the remote live in their own modules.
"""

import fcntl
import functools
import json
import logging
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import archives as records
from ..errors import DiskFull, Locked, is_disk_full
from . import par2, sevenzip_tool
from .contents import live_torrents, materialize, select, stage, write_staged
from .errors import ArchiveError, RemoteError
from .remote import SET_MANIFEST, Lock, Remote, set_metadata
from .retention import SetInfo, tier_on_create
from .setmanifest import FORMAT, INNER_NAME, public_manifest
from .sevenzip import Entry, write_archive
from .tiers import FULL_TIERS, TIERS, RetentionPolicy, lock_until, size_class, volume_size_for

log = logging.getLogger(__name__)
ONE_FILE = 1 << 62  # a volume size py7zr never reaches: the archive is written whole, then split


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
    writer: str = ""  # 7z | py7zr
    locked_until: str | None = None
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


def set_lock(doc: dict) -> Lock | None:
    if not doc.get("locked_until"):
        return None
    return Lock(doc.get("lock_mode") or "COMPLIANCE", datetime.fromisoformat(doc["locked_until"]))


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
        doc = row["manifest"]
        write_staged(local / SET_MANIFEST, _public_json(doc))  # as the catalog recorded it (a crash may have torn it)
        remote.upload_set(local, row["tier"], row["set_id"], set_metadata(doc), set_lock(doc))
        records.update_set(cat, row["set_id"], state="uploaded", local_path=None, error=None)
        shutil.rmtree(local, ignore_errors=True)
        done.append(row["set_id"])
    return done


def create_set(*, home, settings, catalog, manifests, store, tier: str, remote: Remote | None, passphrase: str,
               dry_run: bool = False, now: datetime | None = None, check_remote: bool = True,
               cancel: threading.Event | None = None) -> CreateResult:
    """cancel: when set (the service is stopping), 7z and par2 are stopped and Cancelled is raised;
    nothing of the set is kept."""
    if tier not in TIERS:
        raise ArchiveError(tier, f"unknown tier (one of {', '.join(TIERS)})")
    cfg = settings.archive
    now = now or datetime.now(timezone.utc)
    policy = RetentionPolicy.from_settings(cfg)
    resumed = []
    if remote is not None and not dry_run and check_remote:
        locking = any(getattr(cfg.immutable_days, t) > 0 for t in TIERS)
        remote.check(lock=cfg.lock_mode.upper() if locking else "", scratch=archive_root(home) / "scratch")
        resumed = upload_pending(catalog, remote)  # a remote that is down fails above, before anything is built

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
    exe = sevenzip_tool.binary(cfg.sevenzip)
    nominal = cfg.volume_mb * 1024 * 1024 if not cfg.volume_kb else cfg.volume_kb * 1024
    until = lock_until(cfg, actual, now)
    if dry_run:
        staged = stage(sel, catalog, manifests.repo, store, home, staging, dry_run=True)
        return _dry_run(set_id, actual, tier, promoted, sel, staged, remote, cfg, nominal, exe, until)
    clock = _Phases()
    early = None
    need = None  # the room the set takes in the archive folder (outbox, and staging for store reads)
    try:
        staged = stage(sel, catalog, manifests.repo, store, home, staging)
        share = size_class(actual, staged.bytes).redundancy
        need = staged.bytes * (2 + share / 100)

        def sized(estimate: int) -> int:
            return volume_size_for(estimate, nominal, cfg.min_volumes, share)

        # 7z: the media volumes are cut from the bytes stored as they are (known now); the compressed
        # archive is cut once its real size is known, so what shrinks still gets the volumes its PAR2
        # needs to rebuild a lost one. py7zr writes one mixed archive whole, cut the same way.
        stored_bytes = sum(e.size for e in staged.entries if not e.compress)
        volume_size = sized(stored_bytes if exe else staged.bytes)
        doc = {
            "format": FORMAT, "set_id": set_id, "tier": actual, "requested": tier, "promoted": promoted,
            "full": sel.full, "why": sel.why, "base_set": None if sel.full else previous["set_id"],
            "created": now.isoformat(),  # full precision: dailies compare snapshot times with it
            "retain_until": policy.retain_until(actual, now).isoformat(timespec="seconds"),
            "locked_until": until.isoformat(timespec="seconds") if until else None,
            "lock_mode": cfg.lock_mode.upper() if until else None,
            "manifests_commit": sel.head, "deleted_manifests": sel.deleted_manifests,
            "volume_size": volume_size, "members": staged.members, "skipped": staged.skipped,
        }
        entries = list(staged.entries)
        if exe:
            live = live_torrents(catalog, store, staged) if _can_bind() else {}
            in_place = {id(e) for t in live.values() for e, _p, _i in t.files}
            need = staged.bytes * (1 + share / 100) + sum(e.size for e in entries if id(e) not in in_place)
            materialize([e for e in entries if id(e) not in in_place], staging)
            clock.lap("stage")
            archives, digests = _write_7z(exe, entries, live, staging, outbox, set_id, volume_size, passphrase, doc,
                                          cancel, sized=lambda z: max(volume_size, sized(stored_bytes + z)))
            doc["writer"] = "7z"
            doc["read_in_place"] = sorted(live)
        else:
            clock.lap("stage")
            [whole] = write_archive(entries, outbox, set_id, ONE_FILE, passphrase,
                                    trailer=lambda: (INNER_NAME, _inner_doc(doc, entries)))
            os.rename(outbox / whole, outbox / f"{set_id}.7z")
            volume_size = doc["volume_size"] = sized((outbox / f"{set_id}.7z").stat().st_size)
            names = sevenzip_tool.split(outbox, set_id, volume_size)
            archives = [{"name": f"{set_id}.7z", "method": "mixed", "volumes": names, "volume_size": volume_size}]
            watcher = sevenzip_tool.VolumeWatcher()
            digests = watcher.finish(outbox, names)
            doc["writer"] = "py7zr"
        clock.lap("7z")
        shutil.rmtree(staging, ignore_errors=True)
        volumes = [v for a in archives for v in a["volumes"]]
        lock = set_lock(doc)
        # the volumes are final: send them while PAR2 is computed (the manifest still goes last)
        # (a local destination gets them moved at the end: a rename, when on the same filesystem)
        early = _Background(remote.upload_volumes, outbox, actual, set_id, set_metadata(doc), volumes, lock) \
            if remote and not remote.local else None
        sizes = [(outbox / v).stat().st_size for v in volumes]
        cls = size_class(actual, sum(sizes))
        plan = par2.plan(sizes, cls.redundancy, par2.StrategySettings.from_settings(cfg))
        set_names = par2.create(outbox, set_id, volumes, plan, cancel=cancel)
        clock.lap("par2")
        par2_files = sorted(p.name for p in outbox.iterdir() if p.suffix == ".par2")
        par2_sizes = {n: (outbox / n).stat().st_size for n in par2_files}
        doc["archives"] = archives
        doc["volumes"] = [{"name": v, "size": s, sevenzip_tool.DIGEST: digests[v]} for v, s in zip(volumes, sizes)]
        doc["par2"] = {
            "strategy": plan.layout.strategy, "size_class": cls.name, "redundancy": cls.redundancy,
            "block_size": plan.block_size, "window": plan.layout.window, "slide": plan.layout.slide,
            "sets": [{"name": n, "volumes": list(v), "recovery_blocks": r}
                     for n, v, r in zip(set_names, plan.layout.sets, plan.recovery)],
            "files": [{"name": n, "size": par2_sizes[n], sevenzip_tool.DIGEST: sevenzip_tool.volume_digest(outbox / n)}
                      for n in par2_files],
        }
        doc["protection"] = par2.guarantee(plan, sum(par2_sizes.values())).to_json()
        total = sum(sizes) + sum(par2_sizes.values())
        # not synced here: the catalog keeps the manifest, and an upload writes the file again from it
        write_staged(outbox / SET_MANIFEST, _public_json(doc))
        clock.lap("hash")
    except BaseException as exc:
        if early is not None:
            early.wait()
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(outbox, ignore_errors=True)
        if isinstance(exc, DiskFull) or is_disk_full(exc):  # one line, the room the whole set needs
            if need is None:  # full while staging: count the set without writing it
                try:
                    counted = stage(sel, catalog, manifests.repo, store, home, staging, dry_run=True).bytes
                    need = counted * (2 + size_class(actual, counted).redundancy / 100)
                except Exception:  # noqa: BLE001 - the disk-full error is what to report
                    need = None
            raise DiskFull(root, int(need) if need else None) from exc
        raise

    dest = remote.dest if remote else ""
    records.add_set(catalog, {
        "set_id": set_id, "tier": actual, "requested": tier, "full": int(sel.full), "base_set": doc["base_set"],
        "created_at": doc["created"], "retain_until": doc["retain_until"], "remote": dest, "state": "local",
        "manifests_commit": sel.head, "bytes": staged.bytes, "archive_bytes": total, "local_path": str(outbox),
        "manifest": doc, "locked_until": doc["locked_until"],
    })
    result = CreateResult(set_id, actual, tier, promoted, sel.full, False, dest, len(staged.members), staged.bytes,
                          total, len(volumes), {k: doc["par2"][k] for k in ("strategy", "size_class", "redundancy")},
                          doc["protection"], staged.skipped, resumed, writer=doc["writer"],
                          locked_until=doc["locked_until"], seconds=clock.laps)
    if remote is None:
        result.error = "no remote configured: the set waits in the outbox"
        return result
    try:
        if early is not None:
            early.join()
        remote.upload_set(outbox, actual, set_id, set_metadata(doc), lock)
    except RemoteError as exc:
        records.update_set(catalog, set_id, error=str(exc))
        result.error = f"{exc}; the set is kept at {outbox} and the next `archive create` uploads it"
        return result
    clock.lap("upload")
    records.update_set(catalog, set_id, state="uploaded", local_path=None, error=None)
    shutil.rmtree(outbox, ignore_errors=True)
    result.uploaded = True
    return result


def _write_7z(exe: str, entries: list[Entry], live: dict, staging: Path, outbox: Path, set_id: str,
              volume_size: int, passphrase: str, doc: dict, cancel=None,
              sized=None) -> tuple[list[dict], dict[str, str]]:
    """Two archives by 7z: media stored as is (volumes of volume_size), the compressible rest (with
    the inner manifest) in LZMA2, written whole then cut into volumes of sized(its bytes) (default:
    volume_size). Torrents in `live` are read in place, checked (SHA-256, identity) as 7z reads
    them. Returns the archives and every volume's checksum."""
    binds, in_place = {}, set()
    for t in live.values():
        point = staging / "payload" / t.torrent_id
        point.mkdir(parents=True)
        for e, _path, _before in t.files:
            e.sha256 = e.expect_sha256  # checked below, against the bytes on disk
            in_place.add(e.arcname)
            binds[e.arcname] = (t.save_path, point)
    write_staged(staging / INNER_NAME, _inner_doc(doc, entries))
    compressed = [e.arcname for e in entries if e.compress] + [INNER_NAME]
    stored = [e.arcname for e in entries if not e.compress]
    watcher = sevenzip_tool.VolumeWatcher()
    verifier = ThreadPoolExecutor(1, thread_name_prefix="archive-verify")
    # the quick verify of what 7z reads in place runs on the other core meanwhile
    checks = [verifier.submit(t.check) for t in live.values()]
    archives = []

    def write(base: str, members: list[str], method: str) -> dict:
        mounts = sorted({binds[m] for m in members if m in binds})
        whole = method == "lzma2" and sized is not None
        names = sevenzip_tool.write(exe, staging, members, outbox, base, 0 if whole else volume_size, passphrase,
                                    compress=method == "lzma2", watcher=watcher, binds=mounts, cancel=cancel)
        size = volume_size
        if whole:
            size = sized((outbox / names[0]).stat().st_size)
            names = sevenzip_tool.split(outbox, base, size)
        watcher.scan(outbox, base, final=True)
        return {"name": f"{base}.7z", "method": method, "volumes": names, "volume_size": size}

    try:
        # the two archives at once: the compressed one is small, and its 7z mostly waits for the key
        with ThreadPoolExecutor(2, thread_name_prefix="archive-7z") as pool:
            jobs = [pool.submit(write, base, members, method)
                    for base, members, method in ((set_id, stored, "copy"), (f"{set_id}-z", compressed, "lzma2"))
                    if members]
            archives = [fut.result() for fut in jobs]
        changed = [p for fut in checks for p in fut.result()] + [p for t in live.values() for p in t.moved()]
        if changed:
            raise ArchiveError(changed[0], "changed while it was archived (its bytes or identity are no longer "
                               "the snapshot's); the next run archives it from the store")
    finally:
        verifier.shutdown(cancel_futures=True)
    volumes = watcher.finish(outbox, [v for a in archives for v in a["volumes"]])
    return archives, volumes


@functools.lru_cache(maxsize=1)
def _can_bind() -> bool:
    """Can 7z get a private mount namespace (bwrap) to read seeding files in place?"""
    from ..sandbox import probe_bwrap

    why = probe_bwrap()
    if why:
        log.info("archive sets copy their payload out of the store first: %s", why)
    return why is None


def _dry_run(set_id, actual, tier, promoted, sel, staged, remote, cfg, nominal, exe, until) -> CreateResult:
    """What the set would hold, counted like the real one (payload, .torrent files, manifests,
    catalog), and the volumes and PAR2 it would get if nothing compressed."""
    cls = size_class(actual, staged.bytes)
    volume_size = volume_size_for(staged.bytes, nominal, cfg.min_volumes, cls.redundancy)
    n = max(1, -(-staged.bytes // volume_size))
    sizes = [volume_size] * (n - 1) + [staged.bytes - volume_size * (n - 1) or 1]
    plan = par2.plan(sizes, cls.redundancy, par2.StrategySettings.from_settings(cfg))
    names = [f"{set_id}.7z.{i + 1:03d}" for i in range(n)]
    g = par2.guarantee(plan, par2.predicted_bytes(plan, names))
    return CreateResult(set_id, actual, tier, promoted, sel.full, False, remote.dest if remote else "",
                        len(staged.members), staged.bytes, staged.bytes + g.par2_bytes, n,
                        {"strategy": plan.layout.strategy, "size_class": cls.name, "redundancy": cls.redundancy},
                        g.to_json(), staged.skipped, [], dry_run=True, writer="7z" if exe else "py7zr",
                        locked_until=until.isoformat(timespec="seconds") if until else None)


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


def _public_json(doc: dict) -> bytes:
    return (json.dumps(public_manifest(doc), indent=2, sort_keys=True) + "\n").encode()


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
