"""A tiny control-socket server for the TUI's Pilot and snapshot tests.

A real Unix socket speaking the documented protocol (one JSON object per line) with realistic data:
the seam between the TUI and the service. The real service is exercised by the TUI's end-to-end test.
"""

import hashlib
import json
import shutil
import socket
import socketserver
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

NOW = datetime(2026, 11, 22, 20, 0, 0, tzinfo=timezone.utc)


def iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat(timespec="milliseconds")


def h(n: int, width: int = 40) -> str:
    """A realistic info hash, stable for n (sha1 for v1 and torrent ids, sha256 for v2)."""
    digest = hashlib.sha1 if width == 40 else hashlib.sha256
    return digest(str(n).encode()).hexdigest()


def sample_status(extra: int = 0) -> dict:
    """Six realistic torrents in every state (plus `extra` plain protected ones)."""
    torrents = [
        {"id": h(0xA1B2C3), "info_hash_v1": h(0xA1B2C3), "info_hash_v2": h(0xA1B2C3, 64),
         "name": "Bach - Goldberg Variations (Gould 1981) [FLAC]", "size": 1_288_490_188, "qbt_state": "stalledUP",
         "protection": "protected", "last_verified": iso(timedelta(hours=3)), "seeds": 12, "peers": 3,
         "last_snapshot": {"id": "5e1f", "created_at": iso(timedelta(hours=3))},
         "last_drill": {"ok": True, "rto_seconds": 41.3, "finished_at": iso(timedelta(days=2))},
         "drift_alerts": 1, "companions": [{"name": "Goldberg stems", "parity": True}],
         "last_heal": {"outcome": "healed", "started_at": iso(timedelta(hours=2)), "finished_at": iso(timedelta(hours=2))},
         "continuity": cont(0.999998, 1, 0.4, 0.4, timedelta(hours=2))},
        {"id": h(0xD4E5F6), "info_hash_v1": h(0xD4E5F6), "info_hash_v2": None,
         "name": "Debian 12.7 amd64 DVD", "size": 3_994_091_520, "qbt_state": "stoppedUP",
         "protection": "damaged", "last_verified": iso(timedelta(days=1)), "seeds": 140, "peers": 22,
         "last_snapshot": {"id": "77aa", "created_at": iso(timedelta(days=1))},
         "last_drill": {"ok": True, "rto_seconds": 128.0, "finished_at": iso(timedelta(days=6))},
         "drift_alerts": 2, "companions": [],
         "last_heal": {"outcome": "running", "started_at": iso(timedelta(minutes=30)), "finished_at": None},
         "stopped": {"by": "seedward", "since": iso(timedelta(minutes=30)), "because": "drift found"},
         "continuity": cont(0.997, 2, 0.6, 1800.0, timedelta(minutes=30))},
        {"id": h(0x0F0F0F), "info_hash_v1": h(0x0F0F0F), "info_hash_v2": h(0x0F0F0F, 64),
         "name": "Night of the Living Dead (1968) Remaster", "size": 734_003_200, "qbt_state": "checkingUP",
         "protection": "healing", "last_verified": iso(timedelta(minutes=12)), "seeds": 4, "peers": 1,
         "last_snapshot": {"id": "9c01", "created_at": iso(timedelta(days=3))},
         "last_drill": {"ok": False, "rto_seconds": 33.0, "finished_at": iso(timedelta(days=4))},
         "drift_alerts": 1, "companions": [{"name": "NotLD AI upscale", "parity": False}],
         "continuity": cont(0.9999, 1, None, 60.0, timedelta(minutes=12))},
        {"id": h(0x123456), "info_hash_v1": None, "info_hash_v2": h(0x123456, 64),
         "name": "Creative Commons Sampler v2", "size": 52_428_800, "qbt_state": "uploading",
         "protection": "pending", "last_verified": None, "seeds": 0, "peers": 5},
        {"id": h(0xBADBAD), "info_hash_v1": h(0xBADBAD), "info_hash_v2": None,
         "name": "Internet Archive - Prelinger Reel 17", "size": 2_147_483_648, "qbt_state": "stalledUP",
         "protection": "baseline_bad", "last_verified": None, "seeds": 2, "peers": 0,
         "continuity": cont(0.0, 1, None, 7 * 86400.0, timedelta(days=2))},
        {"id": h(0xC0FFEE), "info_hash_v1": h(0xC0FFEE), "info_hash_v2": h(0xC0FFEE, 64),
         "name": "Blender Open Movie - Sprite Fright", "size": 9_663_676_416, "qbt_state": "stalledUP",
         "protection": "protected", "last_verified": iso(timedelta(minutes=40)), "seeds": 33, "peers": 9,
         "last_snapshot": {"id": "aa10", "created_at": iso(timedelta(days=7))}, "drift_alerts": 0,
         "coverage": {"survives": 5, "of": 7, "classes": {"in_place_tag_edit": ["zones"], "resized_header": ["zones"],
                                                           "tail_tag_appended": ["shift"], "tail_tag_removed": ["zones"],
                                                           "scattered_rot": ["parity 1%"], "file_replaced": [],
                                                           "file_deleted": []}},
         "continuity": cont(1.0, 0, None, 0.0, None)},
    ]
    for i in range(extra):
        tid = h(0x10000000 + i)
        torrents.append({"id": tid, "info_hash_v1": tid, "info_hash_v2": None, "name": f"Field Recording {i:05d}",
                         "size": 1_000_000 + i, "qbt_state": "stalledUP", "protection": "protected",
                         "last_verified": iso(timedelta(minutes=i % 600)), "seeds": i % 7, "peers": i % 3,
                         "continuity": cont(1.0, 0, None, 0.0, None)})
    return {
        "service": {"running": True, "version": "0.1.0",
                    "qbittorrent": {"url": "http://127.0.0.1:8080", "state": "connected", "error": None,
                                    "version": "v4.5.2"},
                    "store": {"bytes": 13_958_643_712, "logical_bytes": 26_000_000_000},
                    "last_scrub": iso(timedelta(hours=5))},
        "continuity": cont(0.9998, 5, 0.5, 7 * 86400.0, timedelta(minutes=12)),
        "torrents": torrents,
    }


def continuity_detail(torrent_id) -> dict:
    """The `detail` op's continuity: every window and a 7-day strip (an incident 3 days ago healed in
    ten minutes; the damaged torrent's since 30 minutes)."""
    now_damaged = torrent_id == h(0xD4E5F6)
    timeline = [("unwatched", timedelta(days=7), timedelta(days=6, hours=20)),
                ("seeding", timedelta(days=6, hours=20), timedelta(days=3)),
                ("stopped", timedelta(days=3), timedelta(days=2, hours=23, minutes=58)),
                ("healing", timedelta(days=2, hours=23, minutes=58), timedelta(days=2, hours=23, minutes=50)),
                ("seeding", timedelta(days=2, hours=23, minutes=50), timedelta(minutes=30) if now_damaged else timedelta()),
                *([("damaged", timedelta(minutes=30), timedelta())] if now_damaged else [])]
    week = {"window": "7d", "intact_share": 0.997 if now_damaged else 0.9993, "interruptions": 2 if now_damaged else 1,
            "median_heal_seconds": 600.0, "longest_outage_seconds": 1800.0 if now_damaged else 600.0,
            "last_incident": iso(timedelta(minutes=30) if now_damaged else timedelta(days=3)),
            "observed_seconds": 600000.0, "stopped_by_seedward_seconds": 120.0,
            "heal_seconds": {"count": 1, "median": 600.0, "max": 600.0},
            "detect_seconds": {"count": 1, "median": 0.4, "max": 0.4}, "ongoing": now_damaged}
    day = dict(week, window="24h", intact_share=0.98 if now_damaged else 1.0, interruptions=1 if now_damaged else 0)
    return {"windows": {"24h": day, "7d": week, "30d": dict(week, window="30d")},
            "timeline": [{"start": iso(a), "end": iso(b), "state": state} for state, a, b in timeline],
            "watched": True}


def cont(share: float, interruptions: int, median: float | None, longest: float, ago: timedelta | None) -> dict:
    """A status `continuity` object (issue 18's shape)."""
    return {"window": "7d", "intact_share": share, "interruptions": interruptions, "median_heal_seconds": median,
            "longest_outage_seconds": longest, "last_incident": iso(ago) if ago is not None else None}


SAMPLE_EVENTS = [
    {"id": 1, "at": iso(timedelta(days=4)), "kind": "drill_failed", "level": "error", "torrent_id": h(0x0F0F0F),
     "message": "drill of snapshot 9c01 failed: piece 17 bad"},
    {"id": 2, "at": iso(timedelta(days=2)), "kind": "baseline_bad", "level": "error", "torrent_id": h(0xBADBAD),
     "message": "payload never matched its torrent: 3 bad pieces"},
    {"id": 3, "at": iso(timedelta(hours=2)), "kind": "protected", "level": "info", "torrent_id": h(0xA1B2C3),
     "message": "verified and snapshotted"},
    {"id": 4, "at": iso(timedelta(minutes=30)), "kind": "drift", "level": "warning", "torrent_id": h(0xD4E5F6),
     "message": "debian-12.7.0-amd64-DVD-1.iso: 2 damaged pieces (in-place write)"},
    {"id": 5, "at": iso(timedelta(minutes=12)), "kind": "heal", "level": "info", "torrent_id": h(0x0F0F0F),
     "message": "healing 1 piece from snapshot 9c01"},
]


class FakeService:
    """Serve `status`, `events`, `subscribe`, `action`, `pieces`, `detail`, `job_history` (and `ping`) on a
    real Unix socket."""

    def __init__(self, socket_path: Path, status: dict | None = None, pieces: dict | None = None,
                 events: list | None = None, jobs: list | None = None, catalog_db: Path | None = None,
                 dashboard: bool = True):
        """dashboard: answer the compact `dashboard` op as the service does (False: an older service)."""
        self.socket_path = Path(socket_path)
        self.dashboard = dashboard
        self.catalog_db = catalog_db
        self.status = status if status is not None else sample_status()
        self.pieces = pieces if pieces is not None else {h(0xD4E5F6): "o" * 40 + "dd" + "o" * 150 + "u" * 8}
        self.events = list(SAMPLE_EVENTS if events is None else events)
        self.jobs = jobs
        self.actions: list[dict] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.subscribers: list = []
        self.streams: list = []  # the subscribers' sockets, closed when the service stops
        self.server = None
        self.cache_replies = False  # the benchmark's: status and dashboard encoded once until set_*()
        # When set to a threading.Event: status and dashboard answers, made at once, are sent only once
        # it is set (a service slow to answer, or one that answers nothing while its stream goes on).
        self.hold = None
        self._replies: dict[str, bytes] = {}

    def reply(self, req: dict) -> bytes:
        """The encoded answer (cached for status and dashboard when cache_replies is set)."""
        op = req.get("op")
        cached = self.cache_replies and op in ("status", "dashboard")
        if cached:
            with self.lock:
                hit = self._replies.get(op)
            if hit is not None:
                return hit
        data = (json.dumps(self.answer(req)) + "\n").encode()
        if cached:
            with self.lock:
                self._replies[op] = data
        return data

    def start(self) -> "FakeService":
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.answer_lines()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the app quit with a request in flight: as the real service, no traceback

            def answer_lines(self):
                for line in self.rfile:
                    req = json.loads(line)
                    op = req.get("op")
                    with fake.lock:
                        fake.requests.append(op)
                    if op == "subscribe":
                        self.wfile.write(b'{"ok": true}\n')
                        self.wfile.flush()
                        with fake.lock:
                            fake.subscribers.append(self.wfile)
                            fake.streams.append(self.request)
                        self.rfile.read()  # hold the stream open until the client goes
                        return
                    data = fake.reply(req)
                    hold = fake.hold if op in ("status", "dashboard") else None
                    if hold is not None:
                        hold.wait(60)
                    self.wfile.write(data)
                    self.wfile.flush()

        self.server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def answer(self, req: dict) -> dict:
        op = req.get("op")
        with self.lock:
            if op == "ping":
                return {"ok": True}
            if op == "status":
                return {"ok": True, **json.loads(json.dumps(self.status))}
            if op == "dashboard" and self.dashboard:
                from companion.service.dashboard import compact

                return {"ok": True, **compact(self.status)}
            if op == "events":  # as the service: oldest first after `since`, or the newest `last`
                found = [e for e in self.events if e["id"] > req.get("since", 0)
                         and req.get("torrent_id") in (None, e.get("torrent_id"))]
                return {"ok": True, "events": found[-req["last"]:] if req.get("last") else found}
            if op == "pieces":
                if req.get("id") not in self.pieces:
                    return {"ok": False, "error": f"no torrent {req.get('id')}"}
                return {"ok": True, "pieces": self.pieces[req["id"]]}
            if op == "detail":  # as the service: the catalog's record (when there is one), its own events
                out = {"files": [], "snapshots": [], "drills": [], "companions": []}
                if self.catalog_db is not None and self.catalog_db.exists():
                    from companion.catalog import views

                    out = views.offline_answer(self.catalog_db, "detail", req)
                out["events"] = sorted((e for e in self.events if e.get("torrent_id") == req.get("id")),
                                       key=lambda e: e["id"], reverse=True)
                out["pieces"] = self.pieces.get(req.get("id"), "")
                out["continuity"] = continuity_detail(req.get("id"))
                return {"ok": True, **out, "id": req.get("id")}
            if op == "job_history":
                return {"ok": True, "ai": [], "queue": []}
            if op == "jobs" and self.jobs is not None:
                return {"ok": True, "jobs": self.jobs}
            if op == "action":
                self.actions.append(req)
                job = 100 + len(self.actions)
                kind = {"verify": "protect"}.get(req["action"], req["action"])
                for t in self.status["torrents"]:
                    if t["id"] == req["id"]:
                        t.setdefault("jobs", []).append({"id": job, "kind": kind, "state": "queued"})
                return {"ok": True, "id": req["id"], "job": job}
            return {"ok": False, "error": f"unknown op {op!r}"}

    def set_protection(self, torrent_id: str, state: str) -> None:
        with self.lock:
            self._replies.clear()
            for t in self.status["torrents"]:
                if t["id"] == torrent_id:
                    t["protection"] = state

    def set_job(self, job: int, state: str | None) -> None:
        """Move a queued job to `state`; None: the job has finished and leaves the status."""
        with self.lock:
            self._replies.clear()
            for t in self.status["torrents"]:
                jobs = t.get("jobs", [])
                for j in list(jobs):
                    if j["id"] == job:
                        if state is None:
                            jobs.remove(j)
                        else:
                            j["state"] = state

    def push(self, event: dict) -> None:
        """Send one event line to every subscriber."""
        line = (json.dumps(event) + "\n").encode()
        with self.lock:
            for wfile in list(self.subscribers):
                try:
                    wfile.write(line)
                    wfile.flush()
                except OSError:
                    self.subscribers.remove(wfile)

    def stop(self) -> None:
        """Stop as a service process would: the socket goes, and every open stream ends."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        with self.lock:
            for sock in self.streams:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.streams.clear()
            self.subscribers.clear()
        self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def home():
    """A state home under /tmp: Unix socket paths must stay short (108 bytes), pytest's tmp_path can be too long."""
    from companion.home import Home

    root = Path(tempfile.mkdtemp(prefix="sw-tui-", dir="/tmp"))
    yield Home(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fake(home):
    """A fake service speaking the control protocol on the home's real Unix socket."""
    service = FakeService(home.socket, catalog_db=home.catalog_db).start()
    yield service
    service.stop()
