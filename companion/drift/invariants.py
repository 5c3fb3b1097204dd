"""What every protection state promises, checked after every sync and shown, never hidden.

Each rule is written down once here (RULES; the README's "What `protected` promises" says the
same). `violations()` is the pure check; `Invariants` runs it after each sync (the torrents that
sync changed, plus every torrent seedward holds; all of them every `full_seconds`), repairs what
it can (a verification, a qBittorrent step, a tag) and keeps the open violations for `status`.
A rolling stat sweep rides along: each run stats a bounded slice of the protected files, so a
change no event reported (an mmap write, a missed event) or a new hard link is found within
minutes even in a big library.
"""

import logging
import os
import time
from dataclasses import dataclass

from ..catalog import trust
from ..qbt import BUSY_STATES, normalize_state
from ..states import HARDLINKED_TAG, STATES, state_tag, split_tags

log = logging.getLogger(__name__)

RULES = {
    "protected-intact": "a protected torrent has no drift waiting: none of its files is being healed, "
                        "retried or changed since its last verification",
    "protected-seeding": "a protected torrent is complete (100%) and not in error in qBittorrent, and seeding "
                         "unless the user stopped it (`seedward stop`, or qBittorrent's own stop)",
    "held-worked-on": "a torrent seedward stopped is damaged or healing (being worked on), else it is started again",
    "healing-running": "a healing torrent has a heal running, or qBittorrent's part of a finished heal queued",
    "damaged-handled": "a damaged torrent whose policy heals is being healed or has its next try scheduled",
    "tags-mirror": "qBittorrent's seedward:<state> tag is the torrent's protection state, and seedward:hardlinked "
                   "is there exactly when one of its files has other hard links",
}
ERROR_STATES = {"error", "missingFiles"}
RECONNECT_WATCH = 120.0  # after qBittorrent reconnects: torrents it shows stopped that seedward had started
GRACE_SECONDS = 3.0  # a promise broken for less than this is a transition (qBittorrent refreshes every ~1.5 s)


@dataclass(frozen=True)
class Violation:
    torrent_id: str
    rule: str
    detail: str

    def to_json(self) -> dict:
        return {"torrent_id": self.torrent_id, "rule": self.rule, "promise": RULES[self.rule], "detail": self.detail}


def violations(torrents, live: dict, holds: dict, work: dict, hardlinked: dict, heals, *,
               qbt_known: bool = True) -> list[Violation]:
    """The broken promises (pure). torrents: catalog rows (id, protection); live: qBittorrent's view
    by id (from the sync loop); holds: seedward's holds by id; work: {"checking", "suspect",
    "retries", "swarm"} (sets/dicts of ids the monitor is working on); hardlinked: id -> paths;
    heals(row) -> True when the torrent's policy heals. qbt_known=False (qBittorrent not
    answering): only the rules that do not need qBittorrent's view are checked."""
    out = []
    checking, suspect = set(work.get("checking", ())), set(work.get("suspect", ()))
    retries, swarm = set(work.get("retries", ())), set(work.get("swarm", ()))
    for row in torrents:
        tid, state = row["id"], row["protection"]
        t = live.get(tid) if qbt_known else None
        hold = holds.get(tid)
        busy = tid in checking or tid in suspect or tid in swarm
        if state == "protected":
            if tid in retries:
                out.append(Violation(tid, "protected-intact", "a drift of it is waiting for its next try"))
            if hold is not None and not busy and not hold["steps"]:
                out.append(Violation(tid, "held-worked-on", f"stopped by seedward since {hold['since']} "
                                     f"({hold['because']}) while protected"))
            if t is not None and not busy and hold is None:
                qstate = normalize_state(t.get("state", ""))
                if qstate in ERROR_STATES:
                    out.append(Violation(tid, "protected-seeding", f"qBittorrent reports {qstate}"))
                elif qstate not in BUSY_STATES and float(t.get("progress", 1)) < 1:
                    out.append(Violation(tid, "protected-seeding",
                                         f"qBittorrent has {float(t.get('progress', 0)):.1%} of it ({qstate})"))
        elif state == "healing":
            if not busy and hold is None:
                out.append(Violation(tid, "healing-running", "no heal is running and nothing is queued for it"))
            elif not busy and hold is not None and not hold["steps"] and not hold["settled"]:
                out.append(Violation(tid, "healing-running", "no heal is running; it stays stopped"))
        elif state == "damaged":
            if heals(row) and not busy and tid not in retries:
                out.append(Violation(tid, "damaged-handled", "nothing is healing it and no retry is scheduled"))
        elif hold is not None and not hold["steps"] and not busy:
            out.append(Violation(tid, "held-worked-on", f"stopped by seedward while {state}"))
        if t is not None and "tags" in t and state in STATES:
            tags = set(split_tags(t.get("tags", "")))
            if state_tag(state) not in tags or any(state_tag(s) in tags for s in STATES if s != state):
                out.append(Violation(tid, "tags-mirror", f"tags {sorted(x for x in tags if x.startswith('seedward:'))}"
                                     f" for {state}"))
            elif (HARDLINKED_TAG in tags) != bool(hardlinked.get(tid)):
                out.append(Violation(tid, "tags-mirror", "seedward:hardlinked " +
                                     ("missing" if hardlinked.get(tid) else "left over")))
    return out


class Invariants:
    """Runs the checks for the drift component (after each sync) and repairs what it can."""

    def __init__(self, component, *, full_seconds: float = 30.0, sweep_files: int = 2000):
        self.component = component
        self.full_seconds = full_seconds
        self.sweep_files = sweep_files
        self.last_full = 0.0
        self.open: dict[tuple[str, str], Violation] = {}
        self.first_seen: dict[tuple[str, str], float] = {}
        self.checked_at: str | None = None
        self.checks = 0
        self.sweep_cursor = None  # (torrent id, file index) the last sweep ended at
        self.repaired = 0

    def after_sync(self, changed: set, full_update: bool) -> None:
        steps, sync = self.component.responder.steps, self.component.service.sync
        now = time.monotonic()
        since = getattr(sync, "connected_at", None)
        if steps is not None and since is not None and now - since < RECONNECT_WATCH and (full_update or changed):
            steps.after_reconnect({h: t for h in changed if (t := sync.get(h))}, since)  # did it keep our starts?
        full = full_update or now - self.last_full >= self.full_seconds
        self.run(None if full else changed)
        if full:
            self.last_full = now
            self.sweep()

    def run(self, only: set | None = None) -> list[Violation]:
        c = self.component
        cat = c.service.catalog
        monitor, responder = c.monitor, c.responder
        steps = responder.steps
        holds = steps.all() if steps is not None else {}
        if only is None:
            rows = trust.torrent_states(cat)
        else:  # the torrents this sync changed, and every torrent seedward holds
            rows = [r for tid in set(only) | set(holds) if (r := cat.get_torrent(tid)) and not r["removed_at"]]
        rows = [dict(r, protection=responder.overlay.get(r["id"], r["protection"])) for r in rows]
        status = monitor.status()
        work = {"checking": status["checking"], "suspect": status["suspect"], "retries": status["retries"],
                "swarm": set(responder.swarm)}
        sync = c.service.sync
        live = sync.snapshot() if only is None else {h: t for h in {r["id"] for r in rows} if (t := sync.get(h))}
        linked = trust.hardlinked(cat) if only is None else trust.hardlinked_of(cat, [r["id"] for r in rows])
        found = violations(rows, live, holds, work, linked, lambda row: self._heals(row), qbt_known=sync.answering)
        self.checks += 1
        from ..catalog.db_time import now_iso

        self.checked_at = now_iso()
        seen = set()
        now = time.monotonic()
        for v in found:
            key = (v.torrent_id, v.rule)
            seen.add(key)
            first = self.first_seen.setdefault(key, now)
            if now - first < GRACE_SECONDS:
                continue  # qBittorrent's view and the tags lag a moment behind a change: not yet broken
            if key not in self.open:
                self.open[key] = v
                responder.emit("invariant", v.torrent_id, f"broken promise ({v.rule}): {v.detail}; repairing",
                               "warning", rule=v.rule, promise=RULES[v.rule])
            self.repair(v, live.get(v.torrent_id))
        scope = {r["id"] for r in rows}
        for key in [k for k in set(self.open) | set(self.first_seen) if k not in seen and (only is None or k[0] in scope)]:
            self.open.pop(key, None)
            self.first_seen.pop(key, None)
        return found

    def _heals(self, row) -> bool:
        tags = [t.strip() for t in (row["tags"] or "").split(",") if t.strip()]
        return self.component.service.settings.protection.policy_for(row["category"] or "", tags).response == "heal"

    def repair(self, v: Violation, t: dict | None) -> None:
        c = self.component
        monitor, responder = c.monitor, c.responder
        steps = responder.steps
        tid = v.torrent_id
        self.repaired += 1
        if v.rule == "protected-intact":
            responder.set_state(tid, "damaged")
        elif v.rule == "tags-mirror":
            state = responder.state(tid)
            if steps is not None and state in STATES:
                steps.want_tags(tid, add=[state_tag(state)], remove=[state_tag(s) for s in STATES if s != state])
                linked = bool(trust.hardlinked(c.service.catalog).get(tid))
                responder.tag_hardlinked(tid, linked)
        elif v.rule == "protected-seeding":
            # qBittorrent sees it incomplete or in error: hold it, verify it; intact, it is rechecked and started.
            if steps is not None:
                responder.quarantine_now(tid, f"qBittorrent shows it not seeding ({v.detail})")
            responder.set_state(tid, "damaged")
            monitor.retry_now(tid, v.detail)
        elif v.rule in ("held-worked-on", "healing-running", "damaged-handled"):
            if responder.state(tid) in ("protected", "damaged", "healing"):
                monitor.retry_now(tid, v.detail)
            elif steps is not None:
                steps.settle(tid, because=f"released: {v.detail}")

    def sweep(self) -> int:
        """Stat the next slice of protected files (a rolling sweep); returns how many were stat'ed."""
        monitor = self.component.monitor
        part = trust.watched_files(self.component.service.catalog, ("protected",), after=self.sweep_cursor,
                                   limit=self.sweep_files)
        self.sweep_cursor = (part[-1]["torrent_id"], part[-1]["file_index"]) if len(part) == self.sweep_files else None
        now = time.monotonic()
        for row in part:
            try:
                st = os.lstat(os.path.join(row["save_path"], row["path"]))
            except FileNotFoundError:
                st = None
            except OSError:
                continue
            if st is None or (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev) != \
                    (row["size"], row["mtime_ns"], row["inode"], row["device"]):
                monitor.suspect(row["torrent_id"], row["file_index"], now, force=True)
            elif st.st_nlink != (row["nlink"] or 1):
                monitor.link_count_changed(row["torrent_id"], row["file_index"], row, st.st_nlink)
        return len(part)

    def status(self) -> dict:
        return {"checked_at": self.checked_at, "checks": self.checks, "rules": RULES,
                "violations": [v.to_json() for v in self.open.values()]}
