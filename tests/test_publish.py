"""`seedward publish`: companion torrents (v1, v2, hybrid) added to a real qbittorrent-nox, downloaded by an
independent libtorrent session over loopback and verified; the original keeps seeding, untouched."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import libtorrent as lt
import pytest

from companion import continuity
from companion.catalog import Catalog
from companion.ltsession import add_params, isolated_session
from companion.publish import COMPANION_TAG, EmbeddedSeeder, auto_piece_size, build, companion_of, parse_piece_size
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.helpers import make_torrent, seedward, wait_until, write_payload

pytestmark = pytest.mark.qbt

MAKE = "import os, pathlib; o = pathlib.Path(os.environ['SEEDWARD_OUTPUT']); " \
       "[(o / (f.name + '.x2')).write_bytes(f.read_bytes() * 2) for f in pathlib.Path(os.environ['SEEDWARD_INPUT'], 'film').iterdir()]"


@pytest.fixture(scope="module")
def world(qbt, tmp_path_factory):
    """One original seeding in qBittorrent, cataloged, and one done job on it."""
    root = tmp_path_factory.mktemp("publish")
    seed = root / "seed"
    write_payload(seed / "film", {"film.mkv": 300_000, "notes.txt": 5_000}, seed=9)
    torrent = make_torrent(seed / "film", piece_size=32768, kind="hybrid", out=root / "film.torrent")
    home = root / "home"
    home.mkdir()
    secret = root / "qbt-password"
    secret.write_text(qbt.password)
    secret.chmod(0o600)
    (home / "config.toml").write_text(textwrap.dedent(f"""
        [qbittorrent]
        url = "{qbt.url}"
        username = "{qbt.username}"
        password_file = "{secret}"
        [jobs]
        companion_category = "ai-remasters"
        parity_copies = 1
    """))
    original = qbt.add_torrent(torrent, seed)
    assert seedward("catalog", "add", torrent, seed, home=home).returncode == 0
    proc = seedward("job", "run", "--torrent", original, "--model", "doubler", "--model-version", "1", "--json",
                    "--", sys.executable, "-c", MAKE, home=home)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)
    assert len(job["outputs"]) == 2
    yield {"qbt": qbt, "home": home, "seed": seed, "original": original, "job": job, "root": root,
           "original_files": {p.name: p.read_bytes() for p in (seed / "film").iterdir()}}
    # Only ours: the qbittorrent-nox is shared by the whole session.
    mine = [original] + [load_torrent(p).id for p in (home / "torrents").glob("*.torrent")]
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=mine)


def download(raw: bytes, dest: Path, port: int) -> None:
    """An independent libtorrent session fetches the torrent from 127.0.0.1:port (pieces hash-checked on arrival)."""
    ses = isolated_session()
    handle = ses.add_torrent(add_params(raw, dest, stop_when_ready=False))
    handle.connect_peer(("127.0.0.1", port))

    def done():
        status = handle.status()
        if status.num_peers == 0:
            handle.connect_peer(("127.0.0.1", port))
        return status.is_seeding

    try:
        wait_until(done, 60, 0.1, "the companion download over loopback")
        # libtorrent reports seeding once every piece hashed, which may be before the last bytes
        # are in the files: wait for the files themselves to verify.
        meta = load_torrent(raw)
        wait_until(lambda: Scanner().full_scan(meta, dest).ok, 30, 0.2, "the downloaded files to verify")
    finally:
        ses.remove_torrent(handle)


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_companion_in_qbittorrent_downloaded_and_verified(world, kind, tmp_path):
    qbt = world["qbt"]
    before = qbt.client.torrents_info(torrent_hashes=world["original"])[0]
    proc = seedward("publish", world["job"]["id"][:8], f"--{kind}", "--piece-size", "auto", "--json", home=world["home"])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"info_hash_v1", "info_hash_v2", "torrent_file", "seeded_by"}
    assert out["seeded_by"] == "qbittorrent"
    assert (out["info_hash_v1"] is not None) == (kind != "v2") and (out["info_hash_v2"] is not None) == (kind != "v1")

    meta = load_torrent(Path(out["torrent_file"]))
    assert meta.kind == kind
    assert (meta.info_hash_v1, meta.info_hash_v2) == (out["info_hash_v1"], out["info_hash_v2"])
    original = load_torrent(world["root"] / "film.torrent")
    named = companion_of(meta.raw)
    assert named["id"] == original.id and named["info_hash_v1"] == original.info_hash_v1
    assert named["info_hash_v2"] == original.info_hash_v2 and named["job"] == world["job"]["id"]
    assert original.info_hash_v1 in lt.torrent_info(meta.raw).comment()

    # In qBittorrent: complete, tagged, in the configured category; the original untouched and seeding.
    info = qbt.wait_complete(meta.id)
    assert COMPANION_TAG in info["tags"].split(", ") and info["category"] == "ai-remasters"
    after = qbt.client.torrents_info(torrent_hashes=world["original"])[0]
    assert after["progress"] == 1 and after["state"] == before["state"]
    assert (after["tags"], after["category"], after["save_path"]) == (before["tags"], before["category"], before["save_path"])
    assert {p.name: p.read_bytes() for p in (world["seed"] / "film").iterdir()} == world["original_files"]

    # An independent libtorrent session downloads it all from qBittorrent over loopback.
    download(meta.raw, tmp_path, qbt.peer_port)
    assert Scanner().full_scan(meta, tmp_path).ok
    again = seedward("publish", world["job"]["id"], f"--{kind}", "--json", home=world["home"])
    assert again.returncode == 0 and json.loads(again.stdout) == out  # publishing twice is harmless
    got = tmp_path / meta.name
    for o in world["job"]["outputs"]:
        name = Path(o["path"]).name
        assert hashlib.sha256((got / "output" / name).read_bytes()).hexdigest() == o["sha256"]
        sidecar = json.loads((got / "provenance" / f"{name}.provenance.json").read_text())
        assert sidecar["output"]["sha256"] == o["sha256"] and sidecar["original_torrent"]["id"] == original.id
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=meta.id)


def test_embedded_seeder_serves_a_companion(world, tmp_path):
    job = world["job"]
    content = Path(job["outputs"][0]["path"]).parents[1]
    cat = Catalog(world["home"] / "catalog.sqlite")
    try:
        original = cat.get_torrent(world["original"])
        raw = build(content, original=original, job_id=job["id"], kind="v2", piece_size=16384)
    finally:
        cat.close()
    seeder = EmbeddedSeeder()
    try:
        seeder.seed(raw, content.parent)
        download(raw, tmp_path, seeder.port)
    finally:
        seeder.stop()
    assert Scanner().full_scan(load_torrent(raw), tmp_path).ok


class Tracker:
    """A minimal HTTP tracker on loopback (BEP 3 announces, libtorrent's bencode): it counts the peers that
    announced a complete copy (left=0), so qBittorrent learns the swarm's size the way it does in the wild."""

    def __init__(self):
        self.complete: dict[bytes, set] = {}
        tracker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = parse_qs(urlparse(self.path).query, encoding="latin-1")
                info_hash = query["info_hash"][0].encode("latin-1")
                peer = (query.get("peer_id", [""])[0], query.get("port", ["0"])[0])
                seeds = tracker.complete.setdefault(info_hash, set())
                if query.get("left", ["1"])[0] == "0" and query.get("event", [""])[0] != "stopped":
                    seeds.add(peer)
                else:
                    seeds.discard(peer)
                body = lt.bencode({"interval": 1800, "min interval": 1, "complete": len(seeds), "incomplete": 0,
                                   "peers": b""})
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/announce"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_continuity_tracks_both_swarms_and_only_offers(world, tmp_path):
    qbt = world["qbt"]
    tracker = Tracker()
    try:
        proc = seedward("publish", world["job"]["id"], "--v2", "--tracker", tracker.url, "--json", home=world["home"])
        assert proc.returncode == 0, proc.stderr
        companion = load_torrent(Path(json.loads(proc.stdout)["torrent_file"]))
        qbt.wait_complete(companion.id)

        def report():
            data = json.loads(seedward("continuity", "--json", home=world["home"]).stdout)
            assert data["parity_copies"] == 1
            return [r for r in data["companions"] if r["companion"] == companion.id][0]

        first = wait_until(lambda: (r := report())["companion_swarm"]["seeds"] >= 1 and r, 30, 0.3,
                           "qBittorrent's own announce")
        assert not first["parity"] and first["offer"] is None and first["copies"] == 0

        # A second, independent seeder (a libtorrent session that downloaded it) announces a complete copy.
        ses = isolated_session()
        atp = add_params(companion.raw, tmp_path, stop_when_ready=False)
        atp.trackers = [tracker.url]
        handle = ses.add_torrent(atp)
        handle.connect_peer(("127.0.0.1", qbt.peer_port))
        try:
            wait_until(lambda: handle.status().is_seeding, 60, 0.1, "the second copy")

            def parity():
                qbt.client.torrents_reannounce(torrent_hashes=companion.id)
                hit = report()
                return hit if hit["parity"] else None

            reached = wait_until(parity, 60, 1.0, "qBittorrent to learn of the second seed")
        finally:
            ses.remove_torrent(handle)
    finally:
        tracker.close()
    assert reached["companion_swarm"]["completed"] >= 1 and "never removes it" in reached["offer"]
    # Offered, never done: the original is still in qBittorrent, complete and seeding.
    assert qbt.client.torrents_info(torrent_hashes=world["original"])[0]["progress"] == 1
    cached = json.loads(seedward("continuity", "--cached", "--json", home=world["home"]).stdout)
    assert [r["parity"] for r in cached["companions"] if r["companion"] == companion.id] == [True]
    qbt.client.torrents_delete(delete_files=False, torrent_hashes=companion.id)


def test_parity_is_a_pure_function():
    none = continuity.Swarm(seeds=0, peers=0, completed=0)
    two = continuity.Swarm(seeds=3, peers=1, completed=2)
    assert not continuity.parity(two, none, 1).reached
    verdict = continuity.parity(none, two, 2, original_name="film", original_id="ab" * 20)
    assert verdict.reached and verdict.copies == 2 and "you may retire" in verdict.offer
    assert not continuity.parity(none, two, 3).reached
    # qBittorrent rows: our own seed is not a copy elsewhere; connected seeds count.
    seeding = {"num_complete": 1, "num_seeds": 0, "num_incomplete": 0, "num_leechs": 0, "progress": 1,
               "state": "stalledUP"}
    assert continuity.swarm_from_qbt(seeding).completed == 0
    assert continuity.swarm_from_qbt(dict(seeding, num_complete=4)).completed == 3
    assert continuity.swarm_from_qbt(dict(seeding, num_seeds=2)).completed == 2
    assert continuity.swarm_from_qbt(None) == continuity.Swarm(0, 0, 0)


def test_piece_size_choices():
    assert auto_piece_size(1) == 16384
    assert auto_piece_size(2 * 2**30) == 2 * 2**20
    assert auto_piece_size(10 * 2**40) == 16 * 2**20
    for total in (10**5, 10**8, 3 * 10**9):
        size = auto_piece_size(total)
        assert size & (size - 1) == 0
    assert parse_piece_size("auto") is None and parse_piece_size("4M") == 4 * 2**20
    assert parse_piece_size("65536") == 65536
    for bad in ("1000", "8k", "x"):
        with pytest.raises(Exception):
            parse_piece_size(bad)


def test_private_flag_and_trackers(world):
    job = world["job"]
    content = Path(job["outputs"][0]["path"]).parents[1]
    original = {"id": world["original"], "name": "film", "info_hash_v1": None, "info_hash_v2": "ef" * 32}
    raw = build(content, original=original, job_id=job["id"], kind="hybrid", private=True,
                trackers=["http://127.0.0.1:1/announce", "udp://127.0.0.1:2"])
    info = lt.torrent_info(raw)
    assert info.priv() and list(lt.load_torrent_buffer(raw).trackers) == ["http://127.0.0.1:1/announce", "udp://127.0.0.1:2"]
    assert companion_of(raw)["info_hash_v2"] == "ef" * 32 and "info_hash_v1" not in companion_of(raw)


def test_publish_refuses_changed_outputs(world, tmp_path):
    home = world["home"]
    proc = seedward("job", "run", "--torrent", world["original"], "--model", "doubler", "--model-version", "1",
                    "--json", "--", sys.executable, "-c", MAKE, home=home)
    job = json.loads(proc.stdout)
    target = Path(job["outputs"][0]["path"])
    target.chmod(0o644)
    with open(target, "r+b") as fh:
        fh.write(b"tampered")
    proc = seedward("publish", job["id"], "--json", home=home)
    assert proc.returncode == 2 and "SHA-256 differs" in proc.stderr and proc.stdout == ""


def test_unsandboxed_job_stops_seeding_while_it_runs(world, tmp_path):
    qbt, home = world["qbt"], world["home"]
    config = home / "config.toml"
    saved = config.read_text()
    config.write_text(saved.replace("[jobs]", '[jobs]\nsandbox = "none"'))
    wait = ("import os, time, pathlib; o = pathlib.Path(os.environ['SEEDWARD_OUTPUT']); (o / 'started').touch()\n"
            "for _ in range(600):\n    time.sleep(0.05)\n    if (o / 'go').exists(): break")
    env = dict(os.environ, SEEDWARD_HOME=str(home))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "seedward"), "job", "run", "--torrent",
                             world["original"], "--model", "m", "--model-version", "1", "--json", "--",
                             sys.executable, "-c", wait], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        started = wait_until(lambda: list((home / "jobs").glob("*/*/output/started")), 60, 0.1, "the command")
        state = lambda: qbt.client.torrents_info(torrent_hashes=world["original"])[0]["state"]  # noqa: E731
        wait_until(lambda: state().startswith(("paused", "stopped")), 30, 0.1, "qBittorrent to stop the original")
        (started[0].parent / "go").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        config.write_text(saved)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "done" and "WITHOUT a sandbox" in err
    wait_until(lambda: not state().startswith(("paused", "stopped")), 30, 0.1, "seeding again")
    assert {p.name: p.read_bytes() for p in (world["seed"] / "film").iterdir()} == world["original_files"]


def test_publish_refuses_bad_input(world):
    assert seedward("publish", "ffffffffff", home=world["home"]).returncode == 2
    proc = seedward("publish", world["job"]["id"], "--piece-size", "1000", home=world["home"])
    assert proc.returncode == 2 and "--piece-size" in proc.stderr and proc.stderr.count("\n") == 1
