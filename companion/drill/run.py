"""One drill: restore a snapshot into scratch, SHA-256 every file, recheck it in libtorrent.

RTO = restore + verify + recheck seconds. RPO = how much newer the payload's last known
change (the newest file mtime the catalog saw) is than the snapshot: 0 when the snapshot
already holds it. The seeding folders are never opened: only the store and the scratch.
"""

import errno
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .. import ltsession
from ..catalog import drills as rows
from ..errors import EXIT_DISK_FULL, Error, NotFound, StoreCorrupt, is_disk_full
from ..piece_plan import files_of_piece
from ..scan import Cancelled
from ..torrent import load_torrent
from .restore import restore_snapshot
from .scratch import Scratch, ScratchFull, check_not_seeding_path, check_space, scratch_root, this_process
from .verify import Expected, verify_files

log = logging.getLogger(__name__)


class SnapshotMissing(NotFound):
    """{}"""


class DrillError(Error):
    """drill of {}: {}"""


@dataclass
class DrillResult:
    drill_id: str
    torrent_id: str
    snapshot: str = ""
    ok: bool = False
    restore_seconds: float = 0.0
    verify_seconds: float = 0.0
    recheck_seconds: float = 0.0
    swarm_seconds: float | None = None
    rpo_seconds: float | None = None
    bytes: int = 0
    bad_pieces: list[int] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: int | None = None  # the exit code of the error that ended the drill (6: scratch full)

    @property
    def rto_seconds(self) -> float:
        return self.restore_seconds + self.verify_seconds + self.recheck_seconds

    @property
    def damaged(self) -> bool:
        """The snapshot itself failed (not the drill's environment)."""
        return bool(self.bad_pieces or self.bad_files)

    def to_json(self) -> dict:
        """The `seedward drill --json` object; "id" is the torrent's id, as on the command line."""
        return {
            "id": self.torrent_id,
            "snapshot": self.snapshot,
            "ok": self.ok,
            "restore_seconds": round(self.restore_seconds, 6),
            "verify_seconds": round(self.verify_seconds, 6),
            "recheck_seconds": round(self.recheck_seconds, 6),
            "rto_seconds": round(self.rto_seconds, 6),
            "rpo_seconds": None if self.rpo_seconds is None else round(self.rpo_seconds, 3),
            "bytes": self.bytes,
            "bad_pieces": self.bad_pieces,
            "bad_files": self.bad_files,
            "error": self.error,
        }


def _parse_time(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def rpo_seconds(snapshot_time: float | None, change_times_ns: list[int | None]) -> float | None:
    """Seconds of payload change the snapshot misses (0 if none); None when nothing is known."""
    known = [t for t in change_times_ns if t]
    if snapshot_time is None or not known:
        return None
    return max(0.0, max(known) / 1e9 - snapshot_time)


def find_snapshot(store, torrent_id: str, wanted: str | None):
    """The latest snapshot of a torrent, or the one whose id starts with `wanted`."""
    if not wanted:
        snap = store.latest(torrent_id)
        if snap is None:
            raise SnapshotMissing(f"torrent {torrent_id[:12]} has no snapshot to drill")
        return snap
    matches = [s for s in store.snapshots(torrent_id) if s.id.startswith(wanted.lower())]
    if not matches:
        raise SnapshotMissing(f"torrent {torrent_id[:12]} has no snapshot {wanted!r}")
    if len(matches) > 1:
        raise SnapshotMissing(f"snapshot {wanted!r} is ambiguous for torrent {torrent_id[:12]}")
    return matches[0]


def torrent_bytes(home, row) -> bytes:
    for candidate in (row["torrent_file"], home.torrents / f"{row['id']}.torrent"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    raise DrillError(row["id"][:12], f"its .torrent is kept neither in the store nor in {home.torrents}")


def expected_files(cat, meta, torrent_id: str, indices: set[int]) -> list[Expected]:
    """The catalog's SHA-256 of each snapshotted file; only hashes of a verified baseline are trusted."""
    catalog = {r["file_index"]: r for r in cat.get_files(torrent_id)}
    out = []
    for entry in meta.real_files:
        if entry.index not in indices:
            continue
        row = catalog.get(entry.index)
        sha = row["sha256"] if row is not None and row["status"] == "ok" else None
        out.append(Expected(entry.path, entry.size, sha, entry.link_target))
    return out


def covered_pieces(meta, indices: set[int]) -> set[int]:
    """Pieces made only of snapshotted files (and pad files): the ones a drill can prove."""
    if {e.index for e in meta.real_files} <= indices:
        return set(range(meta.num_pieces))
    return {p for p in range(meta.num_pieces) if all(f.index in indices for f in files_of_piece(meta, p))}


def describe(exc: BaseException, scratch: Path) -> str:
    """One line for the record: our errors as they are, the disk filling up as ScratchFull."""
    if isinstance(exc, Error):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return str(ScratchFull(scratch, f"no space left while the drill wrote {exc.filename or 'its files'}"))
    if isinstance(exc, OSError):
        return f"{exc.filename or scratch}: {exc.strerror or exc}"
    return f"libtorrent: {exc}"


def default_session(**extra):
    """A drill's isolated libtorrent session: loopback only, hashing on every core."""
    return ltsession.isolated_session(hashing_threads=os.cpu_count() or 2, **extra)


class Drill:
    """Drills snapshots of one store. Settings are `Settings.drill`; `session_factory` makes the
    isolated libtorrent sessions (tests pass one whose check never starts)."""

    def __init__(self, catalog, store, home, settings, session_factory=default_session, emit=None, progress=None):
        """progress(description, total, unit="bytes"): a context manager giving a bar(done, total) /
        bar.advance(n) callable per phase (the CLI's progress display); None: none."""
        self.progress = progress
        self.cat = catalog
        self.store = store
        self.home = home
        self.settings = settings
        self.session_factory = session_factory
        # the service passes its bus (events reach subscribers too); alone, events go to the catalog
        self.emit = emit or (lambda kind, tid, message, level="info", **data:
                             catalog.add_event(tid, kind, message, level=level, **data))

    def run(self, torrent_id: str, snapshot: str | None = None, swarm: bool = False,
            reason: str = "manual", cancel=None) -> DrillResult:
        """Drill one torrent's snapshot. Never raises for the drill's own failures: they are in
        the result, recorded in the catalog, and raised as an alert event. A set `cancel` event
        stops it (recorded as failed) and raises scan.Cancelled."""
        result = DrillResult(secrets.token_hex(8), torrent_id)
        rows.start_drill(self.cat, result.drill_id, torrent_id, snapshot or "", reason, swarm, this_process())
        self.cancel = cancel
        try:
            self._run(result, snapshot, swarm)
        except Cancelled as exc:
            result.error = f"interrupted: {exc}"
            self._record(result, interrupted=True)
            raise
        except (Error, OSError, RuntimeError) as exc:
            # RuntimeError: what libtorrent's bindings raise
            result.error = describe(exc, scratch_root(self.home, self.settings))
            result.error_code = EXIT_DISK_FULL if is_disk_full(exc) else getattr(exc, "exit_code", None)
            log.info("drill %s of %s: %s", result.drill_id, torrent_id[:12], result.error)
        except BaseException as exc:
            result.error = f"interrupted ({type(exc).__name__})"
            self._record(result, interrupted=True)
            raise
        result.ok = result.error is None and not result.damaged
        self._record(result)
        return result

    def _run(self, result: DrillResult, wanted: str | None, swarm: bool) -> None:
        row = self.cat.get_torrent(result.torrent_id)
        if row is None:
            raise NotFound(f"no torrent {result.torrent_id} in the catalog")
        snap = find_snapshot(self.store, result.torrent_id, wanted)
        result.snapshot = snap.id
        meta = self._meta(snap, row)
        result.rpo_seconds = rpo_seconds(_parse_time(snap.created_at),
                                         [r["mtime_ns"] for r in self.cat.get_files(result.torrent_id)])
        cfg = self.settings.drill
        root = scratch_root(self.home, self.settings)
        check_not_seeding_path(root, row["save_path"], {Path(f.path).parts[0] for f in meta.real_files})
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        needed = meta.payload_size * (2 if swarm else 1)
        check_space(root, needed, cfg.scratch_max_mb * 2**20)
        rate = cfg.read_rate_mb * 1e6
        timeout = cfg.timeout_seconds

        with Scratch(root, result.drill_id) as scratch:
            self._check_cancel(result)
            t = time.monotonic()
            with self._phase("restoring to scratch", snap.bytes) as bar:
                restored = restore_snapshot(self.store, self.cat, snap.id, meta, scratch.payload,
                                            progress=bar.advance if bar else None)
            result.restore_seconds = time.monotonic() - t
            result.bytes = restored.bytes
            if restored.corrupt:
                result.error = f"store corrupt: {restored.describe()}"

            self._check_cancel(result)
            indices = self._snapshot_files(snap.id)
            expected = expected_files(self.cat, meta, result.torrent_id, indices)
            with self._phase("verifying SHA-256", sum(e.size for e in expected)) as bar:
                verified = verify_files(scratch.payload, expected, rate, workers=os.cpu_count() or 2,
                                        known=restored.sha256, progress=bar.advance if bar else None)
            result.verify_seconds = verified.seconds
            result.bad_files = sorted(set(verified.bad_files) | set(restored.corrupt_files(meta)))

            self._check_cancel(result)
            ses = self.session_factory()
            with self._phase("libtorrent recheck", meta.payload_size) as bar:
                handle, check = ltsession.check_payload(
                    ses, meta.raw, scratch.payload, timeout, self.cancel,
                    progress=(lambda f: bar(f * meta.payload_size)) if bar else None)
            result.recheck_seconds = check.seconds
            covered = covered_pieces(meta, indices)
            result.bad_pieces = sorted((set(check.bad_pieces) | set(restored.corrupt_pieces())) & covered)
            try:
                if swarm and len(covered) < meta.num_pieces:
                    raise DrillError(result.torrent_id[:12], "--swarm needs a snapshot of every file;"
                                     f" snapshot {snap.id[:12]} holds {len(indices)} of {len(meta.real_files)}")
                if swarm and not result.damaged:
                    proof = ltsession.swarm_proof(ses, handle, meta.raw, scratch.swarm, timeout,
                                                  downloader=self.session_factory(), cancel=self.cancel)
                    result.swarm_seconds = proof.seconds
                    if not proof.ok:
                        raise DrillError(result.torrent_id[:12], "the second session's download failed its recheck"
                                         f" at pieces {proof.check.bad_pieces[:20]}")
            finally:
                ses.remove_torrent(handle)

    def _phase(self, description: str, total):
        if self.progress is None:
            from contextlib import nullcontext

            return nullcontext(None)
        return self.progress(description, total)

    def _check_cancel(self, result: DrillResult) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"drill of {result.torrent_id[:12]}")

    def _meta(self, snap, row):
        """The drilled torrent: the store's copy, else the one kept in the state home."""
        try:
            return self.store.torrent_meta(snap)
        except (StoreCorrupt, AttributeError) as exc:
            log.info("snapshot %s: no torrent in the store (%s); using the state home's", snap.id[:12], exc)
        return load_torrent(torrent_bytes(self.home, row), source=f"{row['id'][:12]}.torrent")

    def _snapshot_files(self, snapshot_id: str) -> set[int]:
        from ..catalog.snapshots import snapshot_files

        return {r["file_index"] for r in snapshot_files(self.cat, snapshot_id)}

    def _record(self, result: DrillResult, interrupted: bool = False) -> None:
        rows.finish_drill(
            self.cat, result.drill_id, ok=result.ok, snapshot_id=result.snapshot, bad_pieces=result.bad_pieces,
            bad_files=result.bad_files, restore_seconds=result.restore_seconds,
            verify_seconds=result.verify_seconds, recheck_seconds=result.recheck_seconds,
            swarm_seconds=result.swarm_seconds, rto_seconds=result.rto_seconds, rpo_seconds=result.rpo_seconds,
            bytes=result.bytes, error=result.error,
        )
        if result.ok:
            if result.snapshot:
                rows.clear_suspect(self.cat, result.snapshot)
            self.emit("drill_passed", result.torrent_id,
                      f"drill of snapshot {result.snapshot[:12]} passed (RTO {result.rto_seconds:.1f}s)",
                      drill=result.drill_id, snapshot=result.snapshot, rto_seconds=result.rto_seconds)
            return
        if interrupted:
            self.emit("drill_interrupted", result.torrent_id, f"drill of {result.torrent_id[:12]}: {result.error}",
                      level="warning", drill=result.drill_id, snapshot=result.snapshot)
            return
        if result.damaged and result.snapshot:
            rows.mark_suspect(self.cat, result.snapshot, result.torrent_id, result.drill_id,
                              f"{len(result.bad_files)} bad files, {len(result.bad_pieces)} bad pieces")
        what = (f"{len(result.bad_files)} bad files, {len(result.bad_pieces)} bad pieces" if result.damaged
                else result.error)
        self.emit("drill_failed", result.torrent_id,
                  f"drill of snapshot {result.snapshot[:12] or '-'} failed: {what}", level="error",
                  drill=result.drill_id, snapshot=result.snapshot, bad_files=result.bad_files,
                  bad_pieces=result.bad_pieces[:100], error=result.error)


__all__ = ["Drill", "DrillResult", "DrillError", "SnapshotMissing", "StoreCorrupt"]
