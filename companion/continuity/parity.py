"""Companion parity: watch the original's swarm and its companion's, and say when the companion
can stand on its own (parity: at least K complete copies elsewhere). seedward then *offers* to retire
the original; it never retires, stops or removes anything by itself.
"""

import logging
from dataclasses import dataclass

from ..catalog import jobs as rows

log = logging.getLogger(__name__)

SEEDING = {"uploading", "stalledUP", "stoppedUP", "queuedUP", "forcedUP", "checkingUP"}


@dataclass(frozen=True)
class Swarm:
    seeds: int  # seeds in the swarm (tracker scrape, else connected seeds)
    peers: int  # leechers in the swarm
    completed: int  # complete copies held by others than this seedbox
    downloaded: int | None = None  # trackers' "downloaded" counter, when a tracker reports it

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Parity:
    reached: bool
    copies: int
    needed: int
    offer: str | None  # the retirement offer shown to the user, when parity is reached


def swarm_from_qbt(torrent: dict | None, trackers: list[dict] = ()) -> Swarm:
    """Read a swarm from qBittorrent's torrents/info row (and its trackers, for the downloaded count).

    Complete copies elsewhere: the swarm's seed count without ourselves (a tracker's scrape counts
    us when we seed), and never fewer than the seeds we are connected to.
    """
    if not torrent:
        return Swarm(0, 0, 0, None)
    swarm_seeds = max(int(torrent.get("num_complete", 0) or 0), 0)
    connected = max(int(torrent.get("num_seeds", 0) or 0), 0)
    us = 1 if torrent.get("progress", 0) >= 1 and torrent.get("state") in SEEDING else 0
    completed = max(swarm_seeds - us, connected)
    counts = [int(t.get("num_downloaded", -1)) for t in trackers if int(t.get("num_downloaded", -1) or -1) >= 0]
    return Swarm(seeds=max(swarm_seeds, connected), peers=max(int(torrent.get("num_incomplete", 0) or 0),
                 int(torrent.get("num_leechs", 0) or 0)), completed=completed,
                 downloaded=max(counts) if counts else None)


def parity(original: Swarm, companion: Swarm, copies_needed: int, *, original_name: str = "the original",
           original_id: str = "") -> Parity:
    """Pure: has the companion reached parity? The offer never says seedward will act."""
    reached = companion.completed >= copies_needed
    offer = None
    if reached:
        offer = (f"the companion of {original_name} has {companion.completed} complete copies elsewhere "
                 f"(parity is {copies_needed}); you may retire the original {original_id[:12]} "
                 f"(it has {original.completed}) in qBittorrent yourself; seedward never removes it")
    return Parity(reached, companion.completed, copies_needed, offer)


def observe(catalog, qbt, copies_needed: int, emit=None) -> list[dict]:
    """Poll qBittorrent for every original with companions; record both swarms, mark parity the first
    time it is reached (with a `parity` event carrying the offer). Returns one report per companion.
    emit(kind, torrent_id, message, **detail): the service's bus; default: the catalog's events."""
    emit = emit or (lambda kind, tid, message, **detail: catalog.add_event(tid, kind, message, **detail))
    reports = []
    for comp in rows.list_companions(catalog):
        original = catalog.get_torrent(comp["original_id"])
        name = original["name"] if original else comp["original_id"]
        orig_swarm = _swarm(catalog, qbt, comp["original_id"])
        comp_swarm = _swarm(catalog, qbt, comp["id"])
        verdict = parity(orig_swarm, comp_swarm, copies_needed, original_name=name, original_id=comp["original_id"])
        if verdict.reached and rows.mark_parity(catalog, comp["id"]):
            emit("parity", comp["original_id"], verdict.offer, companion=comp["id"], job=comp["job_id"])
            log.warning("%s", verdict.offer)
        reports.append(report(comp, orig_swarm, comp_swarm, verdict))
    return reports


def _swarm(catalog, qbt, torrent_id: str) -> Swarm:
    torrent = qbt.torrent(torrent_id)
    # The tracker list (for the "downloaded" counter) only when the adapter offers it.
    trackers = qbt.trackers(torrent_id) if torrent is not None and hasattr(qbt, "trackers") else []
    swarm = swarm_from_qbt(torrent, trackers)
    rows.record_swarm(catalog, torrent_id, swarm.seeds, swarm.peers, swarm.completed, swarm.downloaded)
    return swarm


def report(comp, orig_swarm: Swarm, comp_swarm: Swarm, verdict: Parity) -> dict:
    return {
        "companion": comp["id"],
        "original": comp["original_id"],
        "job": comp["job_id"],
        "original_swarm": orig_swarm.to_json(),
        "companion_swarm": comp_swarm.to_json(),
        "parity": verdict.reached,
        "copies": verdict.copies,
        "needed": verdict.needed,
        "offer": verdict.offer,
    }


def stored_reports(catalog, copies_needed: int) -> list[dict]:
    """The last observations, without asking qBittorrent."""
    out = []
    for comp in rows.list_companions(catalog):
        o, c = rows.get_swarm(catalog, comp["original_id"]), rows.get_swarm(catalog, comp["id"])
        orig_swarm = Swarm(o["seeds"], o["peers"], o["completed"], o["downloaded"]) if o else Swarm(0, 0, 0)
        comp_swarm = Swarm(c["seeds"], c["peers"], c["completed"], c["downloaded"]) if c else Swarm(0, 0, 0)
        original = catalog.get_torrent(comp["original_id"])
        verdict = parity(orig_swarm, comp_swarm, copies_needed,
                         original_name=original["name"] if original else comp["original_id"],
                         original_id=comp["original_id"])
        out.append(report(comp, orig_swarm, comp_swarm, verdict))
    return out
