"""The soak test of issue 12: for about two minutes, random in-place writes, renames over,
truncations, hard links (and writes through them) and qBittorrent restarts against 5 seeded
torrents, with the real qbittorrent-nox, real inotify and the real store; then the invariants:
every file equals its torrent, nothing is stuck in `healing` or held, nothing is `protected` that
is not seeding or not intact, every drifted byte is in the quarantine, and seedward itself reports
no broken promise. The sequence is random but seeded (SOAK_SEED), and bounded in time."""

import os
import random
import time
from pathlib import Path

import pytest

from companion.catalog import drift as drift_rows
from companion.catalog import trust
from companion.scan import Scanner
from companion.torrent import load_torrent

from .helpers import wait_until
from .qbt import seed_sample
from .test_protected import content, explain, info, quarantined_bytes, settled, world  # noqa: F401 - fixture

pytestmark = [pytest.mark.qbt, pytest.mark.slow]

RUN_SECONDS = float(os.environ.get("SOAK_SECONDS", "90"))
SEED = int(os.environ.get("SOAK_SEED", "12"))


class Soak:
    def __init__(self, world, qbt, service, rnd: random.Random):
        self.world, self.qbt, self.service, self.rnd = world, qbt, service, rnd
        self.torrents: dict[str, dict] = {}  # id -> {name, files: {path: bytes}, meta}
        self.library = world.root / "library"
        self.library.mkdir()
        self.drifted: dict[str, list[bytes]] = {}  # id -> bytes written that must be kept in the quarantine
        self.ops: list[str] = []  # "t+12.3s kind path"
        self.began = time.monotonic()
        self.links: dict[Path, Path] = {}  # library link -> seed file it was made from

    def add(self, i: int) -> None:
        spec = {"a.flac": 90_000 + 7_000 * i, "b.jpg": 20_000 + 3_000 * i, "sub/c.nfo": 5_000}
        tid, torrent = seed_sample(self.qbt, self.world.dl, f"S{i}", spec, seed=200 + i)
        files = {self.world.dl / f"S{i}" / f: (self.world.dl / f"S{i}" / f).read_bytes() for f in spec}
        self.torrents[tid] = {"name": f"S{i}", "files": files, "meta": load_torrent(torrent)}
        self.drifted[tid] = []

    def settled(self, tid: str) -> bool:
        return settled(self.service, self.qbt, tid, self.torrents[tid]["files"])

    def one(self, tid: str) -> None:
        """One random change to one torrent (which is settled)."""
        t = self.torrents[tid]
        path = self.rnd.choice(sorted(t["files"]))
        size = len(t["files"][path])
        kind = self.rnd.choice(["write", "write", "rename", "truncate", "link", "link_write"])
        mark = f"SOAK{len(self.ops):04d}".encode()
        if kind == "link_write":
            live = [link for link, seed in self.links.items() if seed == path and link.exists()
                    and os.stat(link).st_ino == os.stat(path).st_ino]
            if not live:
                kind = "link"
            else:
                with open(live[0], "r+b") as fh:  # an edit of the library's copy, through the other link
                    fh.seek(self.rnd.randrange(0, size - len(mark)))
                    fh.write(mark)
                self.drifted[tid].append(mark)
        if kind == "link":
            link = self.library / f"{t['name']}-{path.name}-{len(self.ops)}"
            os.link(path, link)
            self.links[link] = path
        elif kind == "write":
            with open(path, "r+b") as fh:
                fh.seek(self.rnd.randrange(0, size - len(mark)))
                fh.write(mark)
            self.drifted[tid].append(mark)
        elif kind == "rename":
            data = bytearray(path.read_bytes())
            at = self.rnd.randrange(0, max(1, len(data) - len(mark)))
            data[at:at + len(mark)] = mark
            tmp = path.with_name(f".{path.name}.soak")
            tmp.write_bytes(bytes(data))
            os.replace(tmp, path)
            self.drifted[tid].append(mark)
        elif kind == "truncate":
            os.truncate(path, self.rnd.randrange(0, size))
        self.op(f"{kind} {path.relative_to(self.world.dl)}")

    def op(self, what: str) -> None:
        self.ops.append(f"t+{time.monotonic() - self.began:.1f}s {what}")


def test_soak_random_drift_and_qbittorrent_restarts_keep_every_promise(world, qbt):
    rnd = random.Random(SEED)
    service = world.serve()
    soak = Soak(world, qbt, service, rnd)
    for i in range(5):
        soak.add(i)
    wait_until(lambda: all(soak.settled(t) for t in soak.torrents), 90, 0.2, "5 torrents protected")
    wait_until(lambda: all(_snapshotted(service, t) for t in soak.torrents), 60, 0.2, "5 snapshots")

    restarts = 0
    began = time.monotonic()
    busy: dict[str, float] = {}  # torrent -> when its last change was made (it is left alone until settled)
    stuck = []
    while time.monotonic() - began < RUN_SECONDS:
        for tid in list(busy):
            if soak.settled(tid):
                del busy[tid]
            elif time.monotonic() - busy[tid] > 90:
                stuck.append(tid)
                del busy[tid]
        assert not stuck, f"not settled within 90 s of a change:\n{explain(service, qbt, stuck)}\n{soak.ops[-20:]}"
        free = [t for t in soak.torrents if t not in busy]
        if restarts < 2 and rnd.random() < 0.03:
            restarts += 1
            soak.op("qBittorrent restart")
            qbt.restart()
            soak.op("qBittorrent back")
        elif free and rnd.random() < 0.6:
            tid = rnd.choice(sorted(free))
            soak.one(tid)
            busy[tid] = time.monotonic()
        time.sleep(rnd.uniform(0.1, 0.8))
    if restarts == 0:  # the sequence must have one: a last restart now, with changes in flight
        soak.op("qBittorrent restart")
        qbt.restart()
        soak.op("qBittorrent back")

    ids = list(soak.torrents)
    try:
        wait_until(lambda: all(soak.settled(t) for t in ids), 120, 0.2, "every torrent settled after the soak")
    except AssertionError as exc:
        wrong = [f"{p.relative_to(world.dl)}: {len(content(p) or b'')} bytes, want {len(d)}"
                 for t in soak.torrents.values() for p, d in t["files"].items() if content(p) != d]
        raise AssertionError(f"{exc}\nfiles that differ: {wrong}\n{explain(service, qbt, ids)}\n"
                             f"{service_events(service)}\noperations: {soak.ops}") from None
    cat = service.catalog
    for tid, t in soak.torrents.items():
        # every file equals its torrent: by the torrent's own hashes, not only against our copy
        assert Scanner().full_scan(t["meta"], service.catalog.get_torrent(tid)["save_path"]).ok, t["name"]
        assert cat.get_torrent(tid)["protection"] == "protected"
        assert trust.get_hold(cat, tid) is None
        assert info(qbt, tid)["progress"] >= 1
        kept = quarantined_bytes(service.home.root, tid)
        for mark in soak.drifted[tid]:
            op = soak.ops[int(mark[4:])]
            assert any(mark in blob for blob in kept), (f"{t['name']}: {mark!r} ({op}) not in the quarantine\n"
                                                        f"{explain(service, qbt, [tid], 400)}\n{soak.ops}")
    assert not cat.query("SELECT * FROM heals WHERE outcome = 'running'")
    wait_until(lambda: not service.status()["service"]["drift"]["invariants"]["violations"], 30, 0.5,
               "no broken promise reported by seedward")
    heals = sum(1 for tid in ids for h in drift_rows.heals(cat, tid, limit=500) if h["outcome"] == "healed")
    print(f"soak: {len(soak.ops)} operations ({restarts} qBittorrent restarts), {heals} heals")


def service_events(service) -> str:
    """The service's own events (qBittorrent connections, restarts seen), for a failed wait."""
    rows = [e for e in service.catalog.events(None, 400) if not e["torrent_id"]][:40]
    return "\n".join(f"    {e['at'][11:23]} {e['kind']}: {e['message'][:120]}" for e in rows[::-1])


def _snapshotted(service, tid: str) -> bool:
    from companion.catalog import snapshots

    return bool(snapshots.list_snapshots(service.catalog, tid))
