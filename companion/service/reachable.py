"""`unreachable` in the service (issue 17): a torrent whose payload this host cannot reach.

The protect job asks `unreachable_why` before it reads anything, records the torrent with
`note_unreachable` (the state it had is kept) and, once the folder is back, `reachable_again` gives
that state back. `ReachWatch` is the component that notices the folders of protected torrents going
away (a disk unmounted under them: their files are not healed onto the empty mount point) and the
unreachable ones coming back, every [service] reach_seconds.
"""

import logging
import os

from .. import reach
from ..catalog import reach as reach_rows
from ..loops import Loop
from ..states import HAS_BASELINE, PROTECTED, STATES, UNREACHABLE, state_tag

log = logging.getLogger(__name__)

REACH_SECONDS = 30.0


def hint(service, instance: str | None) -> str:
    several = len(service.instances) > 1
    return reach.hint(instance or service.instances[0].name, several)


def unreachable_why(service, torrent_id: str, save_path) -> str | None:
    return reach.torrent_unreachable(service.catalog, torrent_id, save_path)


def note_unreachable(service, torrent_id: str, name: str, save_path, why: str, *, instance: str | None = None) -> None:
    """Record a torrent as unreachable (the state it had is kept for its way back), say why and what
    to set, tag it."""
    cat = service.catalog
    new = reach_rows.mark_unreachable(cat, torrent_id, str(save_path), why)
    what = hint(service, instance)
    if new:
        service.emit(UNREACHABLE, torrent_id, f"{name}: unreachable: {why}; {what}", level="warning",
                     save_path=str(save_path), reason=why, hint=what, instance=instance)
    tag(service, torrent_id, UNREACHABLE)


def tag(service, torrent_id: str, state: str) -> None:
    """qBittorrent's seedward:<state> tag, the other state tags removed (best effort: the drift
    invariants mirror tags again when qBittorrent is away now)."""
    try:
        service.qbt.remove_tags(torrent_id, [state_tag(s) for s in STATES if s != state])
        service.qbt.add_tags(torrent_id, [state_tag(state)])
    except Exception as exc:  # noqa: BLE001
        log.info("%s: tag %s not set now: %s", torrent_id[:12], state_tag(state), exc)


def reachable_again(service, torrent_id: str, save_path) -> str:
    """A torrent's payload is reachable again: it gets back the state it had (a protected one is
    then followed without re-hashing when its files are unchanged; a damaged one goes to heal;
    others are verified again). Returns the state set."""
    cat = service.catalog
    previous = reach_rows.clear_unreachable(cat, torrent_id)
    if previous == PROTECTED:
        state = PROTECTED
    elif previous in HAS_BASELINE:
        state = "damaged"
    else:
        state = "pending"
    cat.set_protection(torrent_id, state)
    row = cat.get_torrent(torrent_id)
    service.emit("reachable", torrent_id, f"{row['name'] if row else torrent_id}: reachable again at {save_path}"
                 f" (was {previous or 'unknown'})", save_path=str(save_path), previous=previous)
    service.emit("state", torrent_id, f"protection: {state}", state=state)  # the timeline's (continuity) state back
    if state == "damaged" and "heal" in service.job_kinds:
        service.enqueue("heal", torrent_id, reason="reachable")
    return state


# -- the watch: folders that go away, and come back -------------------------------------------------

class ReachWatch:
    """A component: every REACH_SECONDS, protected torrents whose folder is gone become unreachable,
    and unreachable ones whose folder is back are queued to be protected again."""

    def __init__(self, service, every: float | None = None):
        self.service = service
        every = every or getattr(service.settings.service, "reach_seconds", REACH_SECONDS) or REACH_SECONDS
        self.loop = Loop("reach-watch", self.step, every, first_wait=True, stopping=service.stopping)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def step(self):
        s = self.service
        cat = s.catalog
        for row in reach_rows.unreachable_torrents(cat):
            live = s.sync.get(row["id"])
            if live is None:
                continue
            path = live.get("save_path") or row["save_path"]
            if unreachable_why(s, row["id"], path) is None:
                s.enqueue("protect", row["id"], reason="reachable")
        for save_path, ids in reach_rows.watched_save_paths(cat).items():
            why = reach.unreachable(save_path)  # the folder itself gone: every torrent in it
            if why is None and unreachable_why(s, ids[0], save_path) is None:
                continue  # there, on the filesystem its first torrent's files are on
            for tid in ids:
                live = s.sync.get(tid)
                if live is not None and (live.get("state") == "moving" or _moved(live.get("save_path"), save_path)):
                    continue  # qBittorrent is moving it, or has: the protect job follows it there
                per = why or unreachable_why(s, tid, save_path)
                if per is None:
                    continue
                row = cat.get_torrent(tid)
                note_unreachable(s, tid, row["name"] if row else tid, save_path, per,
                                 instance=(live or {}).get("instance") or (row["instance"] if row else None))
        return None


def _moved(live_path, cataloged) -> bool:
    return bool(live_path) and os.path.normpath(live_path) != os.path.normpath(cataloged)
