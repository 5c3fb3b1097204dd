"""The response to drift, per protection policy: alert, quarantine, or heal (from a snapshot, or
from the swarm when there is none).

The bytes are this module's business and never wait for qBittorrent; what qBittorrent must do
(stop, recheck, start) is handed to drift/qbtsteps.py, which records it in the catalog first and
carries it out when qBittorrent answers. A healed torrent stays `healing` until qBittorrent has
done its part, then it is `protected`: a torrent seedward stopped is always `damaged` or
`healing` until it seeds again.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import reach
from ..catalog import drift as rows
from ..catalog.reach import mark_unreachable
from ..catalog import trust
from ..errors import Error, StoreCorrupt
from ..scan import FileStat
from ..states import STATES as STATE_TAGS
from ..states import state_tag
from .classify import DAMAGED, EXTENDED, MISSING, TRUNCATED, Drift
from . import swarm
from .heal import FileDamage, HealError, heal_files
from .qbtsteps import QbtSteps

log = logging.getLogger(__name__)

ERROR_STATES = {"error", "missingFiles"}
HARDLINKED_TAG = "seedward:hardlinked"


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
    """Acts on classified drift. qbt: companion.qbt.Qbt (or None: nothing is asked of qBittorrent);
    steps: the QbtSteps carrying qBittorrent's part out (made here when not given); read_chunk: the
    store's verified chunk reader (or None: catalog-only); emit(kind, torrent_id, message, level,
    **detail) records an event; live(tid): the sync loop's last view of a torrent (never a call)."""

    def __init__(self, catalog, settings, quarantine_root: Path, *, qbt=None, read_chunk=None, emit=None,
                 recheck_timeout: float = 600.0, swarm_stall: float = 120.0, swarm_timeout: float = 3600.0,
                 steps: QbtSteps | None = None, live=None):
        self.catalog = catalog
        self.settings = settings
        self.quarantine_root = Path(quarantine_root)
        self.qbt = qbt
        self.read_chunk = read_chunk
        self._emit = emit or self._catalog_event
        self.live = live or (lambda tid: None)
        self.swarm_stall = swarm_stall
        self.swarm_timeout = swarm_timeout
        self.steps = steps
        if self.steps is None and qbt is not None:
            self.steps = QbtSteps(catalog, qbt, emit=self.emit, live=self.live, recheck_timeout=recheck_timeout)
        if self.steps is not None:
            self.steps.on_settled = self._settled
            self.steps.on_resumed = self._resumed
            self.steps.on_incomplete = self._incomplete
        self.swarm: set[str] = set()  # torrents whose pieces qBittorrent is fetching from peers
        self.resuming: set[str] = set()  # healed and protected again; "resumed" once qBittorrent seeds them
        self.swarm_threads: list[threading.Thread] = []
        self.overlay: dict[str, str] = {}  # states the catalog could not store (its disk full): shown, retried
        self.retry = None  # fn(tid, why): the monitor verifies the torrent again later (with backoff)
        self.reprotect = None  # fn(tid): verify and catalog the torrent again (after a heal of an unverified one)
        self.ladder = None  # fn(meta, save_path, damages) -> companion.ladder.sources.Supply | None (ladder/service.py)
        self.own_paths = None  # fn(paths) -> why they are seedward's own files (ownpaths.reason), or None
        self.resnapshot = None  # fn(tid): snapshot it (a heal from the ladder or the swarm left it without one)
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    # events and state

    def _catalog_event(self, kind, torrent_id, message, level="info", **detail):
        self.catalog.add_event(torrent_id, kind, message, level=level, **detail)

    def emit(self, kind, torrent_id, message, level="info", **detail) -> None:
        try:
            self._emit(kind, torrent_id, message, level, **detail)
        except Exception:  # noqa: BLE001 - a full disk under the catalog must not stop a heal
            log.log(logging.ERROR if level == "error" else logging.WARNING, "%s (event not recorded)", message)

    @property
    def last_stop(self) -> dict:
        return self.steps.last_stop if self.steps is not None else {}

    def policy(self, torrent_id: str):
        row = self.catalog.get_torrent(torrent_id)
        tags = [t.strip() for t in (row["tags"] or "").split(",") if t.strip()] if row else []
        return self.settings.protection.policy_for(row["category"] if row else "", tags)

    def state(self, torrent_id: str) -> str | None:
        if torrent_id in self.overlay:
            return self.overlay[torrent_id]
        row = self.catalog.get_torrent(torrent_id)
        return row["protection"] if row else None

    def set_state(self, torrent_id: str, state: str) -> None:
        """Record the protection state (kept in memory and shown while the catalog cannot store it)
        and mirror it in qBittorrent's tags (queued)."""
        try:
            self.catalog.set_protection(torrent_id, state)
            self.overlay.pop(torrent_id, None)
        except Exception as exc:  # noqa: BLE001 - sqlite3's "database or disk is full" among others
            self.overlay[torrent_id] = state
            log.error("%s: cannot record protection %s in the catalog: %s", torrent_id[:12], state, exc)
        self.emit("state", torrent_id, f"protection: {state}", "info", state=state)
        if self.steps is not None:
            self.steps.want_tags(torrent_id, add=[state_tag(state)],
                                 remove=[state_tag(s) for s in STATE_TAGS if s != state])

    def flush_overlay(self) -> None:
        """Store the states kept in memory, once the catalog takes writes again."""
        for tid, state in list(self.overlay.items()):
            try:
                self.catalog.set_protection(tid, state)
            except Exception:  # noqa: BLE001
                return
            if self.overlay.get(tid) == state:
                self.overlay.pop(tid, None)

    def tag_hardlinked(self, torrent_id: str, linked: bool) -> None:
        if self.steps is not None:
            if linked:
                self.steps.want_tags(torrent_id, add=[HARDLINKED_TAG])
            else:
                self.steps.want_tags(torrent_id, remove=[HARDLINKED_TAG])

    # qBittorrent's side, through the steps

    def quarantine_now(self, torrent_id: str, because: str = "a protected file changed on disk") -> bool:
        """Stop the torrent in qBittorrent at once (queued; never waits) when the policy
        quarantines or heals. Returns True when it is held (by this call or before)."""
        if self.steps is None or self.policy(torrent_id).response not in ("quarantine", "heal"):
            return False
        if self.steps.hold(torrent_id, because):
            self.emit("stopped", torrent_id, f"{because}: stopped in qBittorrent until it is verified", "info")
        return True

    def release(self, torrent_id: str) -> None:
        """A false alarm: seed again if we stopped it."""
        if self.steps is not None and self.steps.held(torrent_id):
            self.steps.settle(torrent_id, because="false alarm: every piece still matches")

    def _settled(self, tid: str) -> None:
        """qBittorrent has done its part of a handled torrent up to its start: a healed one is
        protected again (its state and tag first, so qBittorrent never shows it seeding as healing)."""
        healed = self.state(tid) == "healing"
        if healed:
            self.set_state(tid, "protected")
        with self.lock:  # (a hold left stopped by the user's choice never resumed: forgotten here)
            (self.resuming.add if healed else self.resuming.discard)(tid)

    def _resumed(self, tid: str) -> None:
        """... and qBittorrent seeds it again (its start seen taken): seeding continuity counts from here."""
        with self.lock:
            if tid not in self.resuming:
                return
            self.resuming.discard(tid)
        self.emit("resumed", tid, "qBittorrent has done its part (stop, recheck, start as needed): the healed "
                  "torrent is protected again and seeds", "info")

    def _incomplete(self, tid: str, progress: float, why: str) -> None:
        self.set_state(tid, "damaged")
        self.emit("heal_failed", tid, f"{why}; the torrent stays stopped and is verified again", "error",
                  progress=progress)
        if self.retry is not None:
            self.retry(tid, why)

    def busy(self, tid: str) -> bool:
        """qBittorrent is re-downloading this torrent's pieces from the swarm: its writes are not drift."""
        with self.lock:
            return tid in self.swarm

    # the response

    def respond(self, meta, save_path: Path, damages: list[FileDamage], *, detected_at: float | None = None,
                reason: str = "drift", response: str | None = None, snapshot_id: str | None = None) -> Outcome:
        """Alert, quarantine or heal, per the torrent's policy (or `response`; `snapshot_id`: heal
        from this snapshot instead of the latest). A failed heal does not raise: the torrent stays
        held and `damaged`, the outcome says why (the monitor retries it)."""
        tid = meta.id
        away = self._unreachable(tid, save_path)
        if away:  # a folder that is gone (a disk not mounted): nothing is healed onto what is there now
            return Outcome(tid, "none", "unreachable", error=away)
        began = time.monotonic()
        detected_at = detected_at or began
        policy = self.policy(tid)
        if response:
            policy = replace(policy, response=response)
        out = Outcome(tid, policy.response, "damaged", pieces=sorted({p for d in damages for p in d.drift.pieces}))
        drift = {d.entry.path: {"kind": d.drift.kind, "pieces": d.drift.pieces, "hardlinked": d.drift.hardlinked,
                                "detail": d.drift.detail} for d in damages}
        kinds = ", ".join(f"{d.entry.path}: {d.drift.kind}" for d in damages)
        self.set_state(tid, "damaged")  # first: shown even when the catalog cannot record the rest
        if policy.response in ("quarantine", "heal"):
            self.quarantine_now(tid, f"drift found ({kinds})")
        heal_id = rows.start_heal(self.catalog, tid, policy.response, drift)
        self.emit("drift", tid, f"{meta.name}: drift found ({kinds})", "warning", files=drift, reason=reason)
        for d in damages:
            if d.drift.hardlinked:
                self.emit("hardlinked", tid, f"{meta.name}: {d.entry.path} has other hard links; an edit through "
                          "any of them changes the seeded file", "warning", path=d.entry.path)
        try:
            if policy.response == "alert" or (self.steps is None and policy.response == "quarantine"):
                out.outcome = "alerted"
            elif policy.response == "quarantine":
                out.timings["stop"] = self._stop_latency(tid, detected_at)
                self.emit("quarantined", tid, f"{meta.name}: stopped in qBittorrent, pieces {out.pieces[:20]} damaged",
                          "warning")
            else:
                own = self.own_paths([d.path for d in damages]) if self.own_paths is not None else None
                if own:  # never write over seedward's own files (its home, store, quarantine, scratch)
                    raise HealError(meta.name, f"not healed: {own}")
                self.set_state(tid, "healing")
                snapshot = self._snapshot_for(meta, policy, damages, snapshot_id, any_snapshot=reason == "restore")
                supply = None if snapshot is not None or snapshot_id else self._ladder_supply(meta, save_path, damages)
                if snapshot is not None or supply is not None:
                    self._heal_from_store(meta, save_path, damages, snapshot, policy, out, detected_at, supply)
                elif self.qbt is None or snapshot_id or reason == "restore":
                    raise HealError(meta.name, f"snapshot {snapshot_id[:12]} cannot heal these files; nothing written"
                                    if snapshot_id else "no snapshot holds these files; nothing written" if reason ==
                                    "restore" else "no snapshot holds these files, and the swarm needs qBittorrent")
                else:
                    swarm.heal(self, meta, save_path, damages, out, heal_id, detected_at, began)
                    return out  # finished by the swarm watcher thread
        except (HealError, StoreCorrupt) as exc:
            self._failed(meta, out, exc, f"heal refused: {exc}; the torrent stays stopped")
        except Error as exc:
            self._failed(meta, out, exc, f"heal failed: {exc}")
        self._finish(heal_id, out, detected_at, began)
        return out

    def _unreachable(self, tid: str, save_path) -> str | None:
        """Why the torrent's payload cannot be reached from here (companion/reach.py), recorded as
        `unreachable` (the state it had is kept for its return), or None."""
        why = reach.torrent_unreachable(self.catalog, tid, save_path)
        if why:
            if mark_unreachable(self.catalog, tid, str(save_path), why):
                self.emit("unreachable", tid, f"unreachable: {why}; nothing healed; {reach.hint(None)}", "warning",
                          save_path=str(save_path), reason=why)
            if self.steps is not None:
                self.steps.want_tags(tid, add=[state_tag("unreachable")],
                                     remove=[state_tag(s) for s in STATE_TAGS if s != "unreachable"])
        return why

    def respond_unverified(self, meta, save_path: Path, result, *, reason: str) -> Outcome:
        """The first verification of a torrent qBittorrent downloaded (and so had verified piece by
        piece) found pieces that no longer match: drift before any baseline or snapshot existed.
        The drifted files are kept whole in quarantine and the swarm heals them; the torrent is
        verified and cataloged again afterwards."""
        damages = []
        for fs in result.files:
            if fs.status == "ok":
                continue
            bad = set(result.bad_pieces)
            segs = tuple((s.piece, s.offset, s.length) for s in fs.segments if s.piece in bad)
            size = fs.stat.size if fs.stat else None
            kind = (MISSING if fs.status == "missing" else TRUNCATED if size is not None and size < fs.entry.size
                    else EXTENDED if size is not None and size > fs.entry.size else DAMAGED)
            damages.append(FileDamage(fs.entry, fs.path, Drift(kind, segs, bool(fs.stat and fs.stat.nlink > 1),
                                                                "changed after qBittorrent completed it")))
        return self.respond(meta, save_path, damages, reason=reason)

    def _failed(self, meta, out: Outcome, exc: Error, message: str) -> None:
        out.outcome, out.error, out.exit_code = "failed", str(exc), exc.exit_code
        self.set_state(meta.id, "damaged")
        if self.steps is not None:
            self.steps.unsettle(meta.id, f"heal failed: {exc}")
        self.emit("heal_failed", meta.id, f"{meta.name}: {message}", "error")

    def _finish(self, heal_id: int, out: Outcome, detected_at: float, began: float) -> None:
        out.timings["total"] = round(time.monotonic() - detected_at, 4)
        out.timings["respond"] = round(time.monotonic() - began, 4)
        rows.finish_heal(self.catalog, heal_id, outcome=out.outcome, source=out.source, pieces=out.pieces,
                         bytes_written=out.bytes_written, quarantine=out.quarantine, recheck=out.recheck,
                         error=out.error, timings=out.timings, snapshot_id=out.snapshot_id)

    def _stop_latency(self, tid: str, detected_at: float) -> float | None:
        at = self.last_stop.get(tid)
        return round(max(0.0, at - detected_at), 4) if at and at >= detected_at - 60 else None

    def _snapshot_for(self, meta, policy, damages, snapshot_id: str | None = None, any_snapshot: bool = False):
        """The latest snapshot (or this one) that can heal these files, or None (the swarm heals).
        any_snapshot: whatever the policy says (`restore`, which the user asked for)."""
        from ..catalog import snapshots

        if self.read_chunk is None:
            return None
        if snapshot_id:
            snap = snapshots.get_snapshot(self.catalog, snapshot_id)
            if snap is None or snap["torrent_id"] != meta.id:
                raise HealError(meta.name, f"snapshot {snapshot_id[:12]} is not a snapshot of this torrent")
            candidates = [snap]
        else:
            if policy.level not in ("snapshot", "auto") and not any_snapshot:
                return None
            if policy.snapshot_max_bytes and meta.payload_size > policy.snapshot_max_bytes and not any_snapshot:
                return None
            candidates = list(reversed(snapshots.list_snapshots(self.catalog, meta.id)))
        for snap in candidates:  # the newest that holds every segment to write (a lease's holds only its files)
            chunks = {(r["file_index"], r["piece"]): r["chunk_id"]
                      for r in snapshots.snapshot_chunks(self.catalog, snap["id"])}
            if all((d.entry.index, seg.piece) in chunks for d in damages for seg in d.segments(meta)):
                return snap["id"], chunks
        return None

    def _ladder_supply(self, meta, save_path, damages):
        """The protection ladder's bytes (companion/ladder) when no snapshot holds the damaged ones;
        None unless they cover every damaged segment."""
        if self.ladder is None:
            return None
        supply = self.ladder(meta, save_path, damages)
        if supply is not None and not supply.complete:
            supply.discard()
            return None
        return supply

    def _heal_from_store(self, meta, save_path, damages, snapshot, policy, out: Outcome, detected_at: float,
                         supply=None) -> None:
        """From a snapshot, or (supply) from the protection ladder: a sibling, the zones, a shift-aware rebuild."""
        tid = meta.id
        t = time.monotonic()
        if supply is not None:
            from ..ladder.heal import heal_from_supply

            snapshot_id, out.source = None, "ladder:" + "+".join(sorted(supply.summary()))
            kept, written = heal_from_supply(meta, save_path, damages, supply, self.quarantine_root)
        else:
            snapshot_id, chunks = snapshot
            out.source = "snapshot"
            kept, written = heal_files(meta, save_path, damages, chunks, self.read_chunk, self.quarantine_root,
                                       snapshot_id=snapshot_id)
        out.snapshot_id = snapshot_id
        out.timings["write_verify"] = round(time.monotonic() - t, 4)
        out.timings["stop"] = self._stop_latency(tid, detected_at)
        out.quarantine = str(kept.folder)
        out.bytes_written = written.bytes_written
        out.pieces = written.pieces
        self._remember(meta, damages, reason="heal", stats=written.stats)
        info = self.live(tid)
        # qBittorrent's view must be refreshed when it may have seen the damage (sizes changed, its
        # own error on a missing file, a recheck of its own): resuming would otherwise wait for peers.
        out.recheck = (any(d.drift.needs_recheck for d in damages) or policy.recheck
                       or (info is not None and (info.get("state") in ERROR_STATES or info.get("progress", 1) < 1)))
        out.outcome = "healed"
        source = f"snapshot {snapshot_id[:12]}" if snapshot_id else out.source
        self.emit("healed", tid, f"{meta.name}: healed {len(out.pieces)} pieces ({out.bytes_written} bytes) from "
                  f"{source}; drifted bytes kept in {kept.folder}", "info",
                  pieces=out.pieces[:100], timings=out.timings, quarantine=str(kept.folder), recheck=out.recheck)
        if snapshot_id is None and self.resnapshot is not None and not self._has_snapshot(tid) and \
                policy.level in ("snapshot", "auto"):
            self.resnapshot(tid)  # healed from the ladder: the policy wants a snapshot, and there is none yet
        if self.steps is not None and self.steps.held(tid):
            self.steps.settle(tid, recheck=out.recheck, stale_if_unstopped=True,
                              because="healed; waiting for qBittorrent to carry out its part")
            if not self.steps.held(tid):  # nothing was left to do
                self._settled(tid)
        else:
            self.set_state(tid, "protected")

    def stop(self, timeout: float = 10.0) -> None:
        """End the waits for the swarm (their heals are recorded as alerts) before the catalog closes."""
        self.stopping.set()
        for thread in self.swarm_threads:
            thread.join(timeout)

    def _has_snapshot(self, tid: str) -> bool:
        from ..catalog import snapshots

        return bool(snapshots.list_snapshots(self.catalog, tid))

    def _remember(self, meta, damages, *, reason: str, stats: dict | None = None) -> None:
        """The files match their baseline again: record the stat of what the heal wrote (a change
        landing after the write then still differs from it, and is drift) and the check."""
        stats = stats or {}
        unlinked = False
        for d in damages:
            st = stats.get(d.entry.index)
            if st is None:
                try:
                    st = FileStat.of(os.lstat(d.path))
                except FileNotFoundError:
                    continue
            unlinked = unlinked or (d.drift.hardlinked and st.nlink <= 1)
            rows.update_file_stat(self.catalog, meta.id, d.entry.index, st)
        rows.record_checks(self.catalog, meta.id, {d.entry.index: True for d in damages}, kind="full", reason=reason)
        if unlinked:  # the seed got its own inode: no longer hard-linked (unless another file still is)
            self.tag_hardlinked(meta.id, bool(trust.hardlinked(self.catalog).get(meta.id)))
