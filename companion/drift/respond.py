"""The response to drift, per protection policy: alert, quarantine, or heal (from a snapshot, or
from the swarm when the torrent is catalog-only). qBittorrent's side of it lives here."""

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..catalog import drift as rows
from ..errors import Error, StoreCorrupt
from ..heal import FileDamage, HealError, bad_pieces, heal_files, quarantine, quarantine_folder
from ..scan import FileStat
from ..service.protect_job import STATES as STATE_TAGS
from ..service.protect_job import state_tag

log = logging.getLogger(__name__)

ERROR_STATES = {"error", "missingFiles"}


@dataclass
class Outcome:
    torrent_id: str
    response: str
    outcome: str  # healed | healing (the swarm is at it) | damaged | alerted | failed
    source: str = ""
    snapshot_id: str | None = None
    pieces: list[int] = field(default_factory=list)
    bytes_written: int = 0
    quarantine: str | None = None
    recheck: bool = False
    error: str | None = None
    exit_code: int = 0
    timings: dict = field(default_factory=dict)


class Responder:
    """Acts on classified drift. qbt: companion.qbt.Qbt (or None: no stop, recheck or resume); read_chunk: the
    store's verified chunk reader (or None: catalog-only); emit(kind, torrent_id, message, level,
    **detail) records an event (the service's bus, or the catalog's events table)."""

    def __init__(self, catalog, settings, quarantine_root: Path, *, qbt=None, read_chunk=None, emit=None,
                 recheck_timeout: float = 600.0, swarm_stall: float = 120.0, swarm_timeout: float = 3600.0):
        self.catalog = catalog
        self.settings = settings
        self.quarantine_root = Path(quarantine_root)
        self.qbt = qbt
        self.read_chunk = read_chunk
        self.emit = emit or self._catalog_event
        self.recheck_timeout = recheck_timeout
        self.swarm_stall = swarm_stall
        self.swarm_timeout = swarm_timeout
        self.stopped: dict[str, float] = {}  # torrent -> monotonic time we stopped it
        self.resume: set[str] = set()  # torrents we stopped that were running
        self.last_stop: dict[str, float] = {}  # torrent -> when the last stop was acknowledged
        self.swarm: set[str] = set()  # torrents whose pieces qBittorrent is fetching from peers
        self.swarm_threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def _catalog_event(self, kind, torrent_id, message, level="info", **detail):
        self.catalog.add_event(torrent_id, kind, message, level=level, **detail)

    def policy(self, torrent_id: str):
        row = self.catalog.get_torrent(torrent_id)
        tags = [t.strip() for t in (row["tags"] or "").split(",") if t.strip()] if row else []
        return self.settings.protection.policy_for(row["category"] if row else "", tags)

    def set_state(self, torrent_id: str, state: str) -> None:
        self.catalog.set_protection(torrent_id, state)
        self.emit("state", torrent_id, f"protection: {state}", "info", state=state)
        if self.qbt is None:
            return
        try:
            self.qbt.remove_tags(torrent_id, [state_tag(s) for s in STATE_TAGS if s != state])
            self.qbt.add_tags(torrent_id, [state_tag(state)])
        except Error as exc:
            log.warning("%s: cannot set qBittorrent tags: %s", torrent_id[:12], exc)

    def quarantine_now(self, torrent_id: str) -> bool:
        """Stop the torrent in qBittorrent at once when the policy quarantines or heals.
        Returns True when it is stopped (by us now, or already)."""
        if self.policy(torrent_id).response not in ("quarantine", "heal") or self.qbt is None:
            return False
        with self.lock:
            if torrent_id in self.stopped:
                return True
            try:
                info = self.qbt.torrent(torrent_id)
                running = info is not None and not info["state"].startswith("stopped")
                self.qbt.stop(torrent_id)
            except Error as exc:
                log.error("%s: cannot stop the torrent in qBittorrent: %s", torrent_id[:12], exc)
                return False
            self.stopped[torrent_id] = self.last_stop[torrent_id] = time.monotonic()
            if running:
                self.resume.add(torrent_id)
        self.emit("stopped", torrent_id, "a protected file changed on disk: stopped in qBittorrent until it is "
                  "verified", "info")
        return True

    def release(self, torrent_id: str) -> None:
        """A false alarm: seed again if we stopped it."""
        with self.lock:
            self.stopped.pop(torrent_id, None)
            again = torrent_id in self.resume
            self.resume.discard(torrent_id)
        if again and self.qbt is not None:
            self.qbt.start(torrent_id)

    def respond(self, meta, save_path: Path, damages: list[FileDamage], *, detected_at: float | None = None,
                reason: str = "drift", response: str | None = None, snapshot_id: str | None = None) -> Outcome:
        """Alert, quarantine or heal, per the torrent's policy (or `response`; `snapshot_id`: heal
        from this snapshot instead of the latest). Never raises for a failed heal: the torrent then
        stays stopped and `damaged`, and the outcome says why. Without qBittorrent (qbt None) a heal
        still writes and verifies; the stop, recheck and resume steps are left out."""
        tid = meta.id
        began = time.monotonic()
        detected_at = detected_at or began
        policy = self.policy(tid)
        if response:
            policy = replace(policy, response=response)
        drift = {d.entry.path: {"kind": d.drift.kind, "pieces": d.drift.pieces, "hardlinked": d.drift.hardlinked,
                                "detail": d.drift.detail} for d in damages}
        heal_id = rows.start_heal(self.catalog, tid, policy.response, drift)
        out = Outcome(tid, policy.response, "damaged", pieces=sorted({p for d in damages for p in d.drift.pieces}))
        kinds = ", ".join(f"{d.entry.path}: {d.drift.kind}" for d in damages)
        self.emit("drift", tid, f"{meta.name}: drift found ({kinds})", "warning", files=drift, reason=reason)
        self.set_state(tid, "damaged")
        for d in damages:
            if d.drift.hardlinked:
                self.emit("hardlinked", tid, f"{meta.name}: {d.entry.path} has other hard links; an edit through "
                          "any of them changes the seeded file", "warning", path=d.entry.path)
        try:
            if policy.response == "alert" or (self.qbt is None and policy.response == "quarantine"):
                out.outcome = "alerted"
            elif policy.response == "quarantine":
                self.quarantine_now(tid)
                out.timings["stop"] = self._stop_latency(tid, detected_at)
                self.emit("quarantined", tid, f"{meta.name}: stopped in qBittorrent, pieces {out.pieces[:20]} damaged",
                          "warning")
            else:
                self.quarantine_now(tid)
                out.timings["stop"] = self._stop_latency(tid, detected_at)
                self.set_state(tid, "healing")
                snapshot = self._snapshot_for(meta, policy, damages, snapshot_id)
                if snapshot is not None:
                    self._heal_from_store(meta, save_path, damages, snapshot, policy, out)
                elif self.qbt is None or snapshot_id:
                    raise HealError(meta.name, f"snapshot {snapshot_id[:12]} cannot heal these files" if snapshot_id
                                    else "no snapshot holds these files, and the swarm needs qBittorrent")
                else:
                    self._heal_from_swarm(meta, save_path, damages, out, heal_id, detected_at, began)
                    return out  # finished by the swarm watcher thread
        except (HealError, StoreCorrupt) as exc:
            out.outcome, out.error, out.exit_code = "failed", str(exc), exc.exit_code
            self._forget_stop(tid)
            self.set_state(tid, "damaged")
            self.emit("heal_failed", tid, f"{meta.name}: heal refused: {exc}; the torrent stays stopped", "error")
        except Error as exc:
            out.outcome, out.error, out.exit_code = "failed", str(exc), exc.exit_code
            self._forget_stop(tid)
            self.set_state(tid, "damaged")
            self.emit("heal_failed", tid, f"{meta.name}: heal failed: {exc}", "error")
        self._finish(heal_id, out, detected_at, began)
        return out

    def _finish(self, heal_id: int, out: Outcome, detected_at: float, began: float) -> None:
        out.timings["total"] = round(time.monotonic() - detected_at, 4)
        out.timings["respond"] = round(time.monotonic() - began, 4)
        rows.finish_heal(self.catalog, heal_id, outcome=out.outcome, source=out.source, pieces=out.pieces,
                         bytes_written=out.bytes_written, quarantine=out.quarantine, recheck=out.recheck,
                         error=out.error, timings=out.timings, snapshot_id=out.snapshot_id)

    def busy(self, tid: str) -> bool:
        """qBittorrent is re-downloading this torrent's pieces from the swarm: its writes are not drift."""
        with self.lock:
            return tid in self.swarm

    def _forget_stop(self, tid: str) -> None:
        """A failed heal leaves the torrent stopped; the next drift stops it again (a person may have
        started it meanwhile), and a later false alarm resumes it if we had stopped it running."""
        with self.lock:
            self.stopped.pop(tid, None)

    def _stop_latency(self, tid: str, detected_at: float) -> float | None:
        at = self.stopped.get(tid)
        return round(max(0.0, at - detected_at), 4) if at else None

    def _snapshot_for(self, meta, policy, damages, snapshot_id: str | None = None):
        """The latest snapshot (or this one) that can heal these files, or None (catalog-only:
        the swarm heals)."""
        from ..catalog import snapshots

        if self.read_chunk is None:
            return None
        if snapshot_id:
            snap = snapshots.get_snapshot(self.catalog, snapshot_id)
            if snap is None or snap["torrent_id"] != meta.id:
                raise HealError(meta.name, f"snapshot {snapshot_id[:12]} is not a snapshot of this torrent")
        else:
            if policy.level != "snapshot":
                return None
            if policy.snapshot_max_bytes and meta.payload_size > policy.snapshot_max_bytes:
                return None
            found = snapshots.list_snapshots(self.catalog, meta.id)
            if not found:
                return None
            snap = found[-1]
        chunks = {(r["file_index"], r["piece"]): r["chunk_id"]
                  for r in snapshots.snapshot_chunks(self.catalog, snap["id"])}
        for d in damages:
            for seg in d.segments(meta):
                if (d.entry.index, seg.piece) not in chunks:
                    return None
        return snap["id"], chunks

    def _heal_from_store(self, meta, save_path, damages, snapshot, policy, out: Outcome) -> None:
        tid = meta.id
        snapshot_id, chunks = snapshot
        out.source = "snapshot"
        out.snapshot_id = snapshot_id
        t = time.monotonic()
        kept, written = heal_files(meta, save_path, damages, chunks, self.read_chunk, self.quarantine_root)
        out.timings["write_verify"] = round(time.monotonic() - t, 4)
        out.quarantine = str(kept.folder)
        out.bytes_written = written.bytes_written
        out.pieces = written.pieces
        self._remember(meta, damages, reason="heal")
        info = self._info(tid) if self.qbt is not None else None
        # qBittorrent's view must be refreshed too when it already saw the damage (a recheck of its
        # own, an error on a missing file): resuming would otherwise wait for peers.
        out.recheck = (any(d.drift.needs_recheck for d in damages) or policy.recheck
                       or (info is not None and (info["state"] in ERROR_STATES or info["progress"] < 1)))
        if out.recheck and self.qbt is not None:
            t = time.monotonic()
            self._recheck(tid)
            out.timings["recheck"] = round(time.monotonic() - t, 4)
        self._resume(tid)
        out.outcome = "healed"
        self.set_state(tid, "protected")
        self.emit("healed", tid, f"{meta.name}: healed {len(out.pieces)} pieces ({out.bytes_written} bytes) from "
                  f"snapshot {snapshot_id[:12]}; drifted bytes kept in {kept.folder}", "info",
                  pieces=out.pieces[:100], timings=out.timings, quarantine=str(kept.folder), recheck=out.recheck)

    def _heal_from_swarm(self, meta, save_path, damages, out: Outcome, heal_id: int, detected_at: float,
                         began: float) -> None:
        """No snapshot: keep the drifted copy, let qBittorrent find the bad pieces and download them.
        The wait for peers runs on its own thread, so other drift is not held up behind it."""
        tid = meta.id
        out.source = "swarm"
        kept = quarantine(meta, damages, quarantine_folder(self.quarantine_root, tid), keep_whole=True)
        out.quarantine = str(kept.folder)
        out.recheck = True
        out.outcome = "healing"
        with self.lock:
            self.swarm.add(tid)
        try:
            self._recheck(tid, want_complete=False)
            self._resume(tid, force=True)
        except BaseException:
            with self.lock:
                self.swarm.discard(tid)
            raise
        self.emit("healing", tid, f"{meta.name}: no snapshot; asking the swarm for pieces {out.pieces[:20]}", "info")
        thread = threading.Thread(target=self._swarm_watch, name=f"swarm-{tid[:8]}", daemon=True,
                                  args=(meta, save_path, damages, out, heal_id, detected_at, began))
        self.swarm_threads = [t for t in self.swarm_threads if t.is_alive()] + [thread]
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the waits for the swarm (their heals are recorded as alerts) before the catalog closes."""
        self.stopping.set()
        for thread in self.swarm_threads:
            thread.join(timeout)

    def _swarm_watch(self, meta, save_path, damages, out: Outcome, heal_id: int, detected_at: float,
                     began: float) -> None:
        tid = meta.id
        t = time.monotonic()
        try:
            done = self._wait_swarm(meta)
            out.timings["swarm"] = round(time.monotonic() - t, 4)
            if done and not bad_pieces(meta, save_path, out.pieces):
                self._remember(meta, damages, reason="heal")
                out.outcome = "healed"
                self.set_state(tid, "protected")
                self.emit("healed", tid, f"{meta.name}: healed by the swarm; drifted copy kept in {out.quarantine}",
                          "info", timings=out.timings)
            else:
                out.outcome = "alerted"
                self.set_state(tid, "damaged")
                why = ("still bad after the swarm's copy" if done else "not yet back: the service stopped"
                       if self.stopping.is_set() else "not supplied by any peer")
                self.emit("alert", tid, f"{meta.name}: pieces {out.pieces[:20]} {why}; the torrent is incomplete "
                          f"until they return (drifted copy in {out.quarantine})", "error")
        except Error as exc:
            out.outcome, out.error, out.exit_code = "failed", str(exc), exc.exit_code
            self.set_state(tid, "damaged")
            self.emit("heal_failed", tid, f"{meta.name}: heal by the swarm failed: {exc}", "error")
        except Exception as exc:  # the thread must record its end whatever happens
            log.exception("%s: swarm watch failed", tid[:12])
            out.outcome, out.error = "failed", str(exc)
        finally:
            with self.lock:
                self.swarm.discard(tid)
            self._finish(heal_id, out, detected_at, began)

    def _remember(self, meta, damages, *, reason: str) -> None:
        """The files match their baseline again: record their new stat and the check."""
        for d in damages:
            try:
                rows.update_file_stat(self.catalog, meta.id, d.entry.index, FileStat.of(os.stat(d.path)))
            except FileNotFoundError:
                pass
        rows.record_checks(self.catalog, meta.id, {d.entry.index: True for d in damages}, kind="full", reason=reason)

    def _info(self, tid: str) -> dict | None:
        try:
            return self.qbt.torrent(tid)
        except Error:
            return None

    def _recheck(self, tid: str, want_complete: bool = True) -> dict:
        """Ask qBittorrent for a full recheck and wait until it is done (at 100% when want_complete)."""
        self.qbt.recheck(tid)
        began = time.monotonic()
        seen_checking = False
        while True:
            info = self.qbt.torrent(tid)
            if info is None:
                raise HealError(tid, "the torrent left qBittorrent during the recheck")
            checking = info["state"].startswith("checking") or info["state"] in ("queuedForChecking", "moving")
            seen_checking = seen_checking or checking
            # qBittorrent's WebUI refreshes torrent states every ~1.5 s: a check too short to be seen
            # is over once that much time has passed.
            settled = not checking and (seen_checking or time.monotonic() - began > 2.5)
            if settled and (not want_complete or info["progress"] >= 1):
                return info
            if settled and info["progress"] < 1 and want_complete and time.monotonic() - began > 10:
                # (a few WebUI refreshes later, so a stale state is not taken for the result)
                raise HealError(tid, f"qBittorrent's recheck found the payload at {info['progress']:.1%}")
            if time.monotonic() - began > self.recheck_timeout:
                raise HealError(tid, f"qBittorrent's recheck did not finish in {self.recheck_timeout:.0f}s")
            if self.stopping.wait(0.05):
                raise HealError(tid, "the service stopped during qBittorrent's recheck; the torrent stays stopped")

    def _resume(self, tid: str, force: bool = False) -> None:
        if self.qbt is None:
            return
        with self.lock:
            again = force or tid in self.resume
            self.resume.discard(tid)
            self.stopped.pop(tid, None)
        if again:
            self.qbt.start(tid)

    def _wait_swarm(self, meta) -> bool:
        began = last_progress_at = time.monotonic()
        last = -1.0
        while time.monotonic() - began < self.swarm_timeout:
            info = self.qbt.torrent(meta.id)
            if info is None:
                return False
            progress = info["progress"]
            if progress >= 1:
                return True
            if progress > last:
                last, last_progress_at = progress, time.monotonic()
                self.emit("heal_progress", meta.id, f"{meta.name}: {progress:.1%} from the swarm", "info",
                          progress=progress)
            if time.monotonic() - last_progress_at > self.swarm_stall:
                return False
            if self.stopping.wait(0.5):
                return False
        return False
