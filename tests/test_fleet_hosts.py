"""Three seedboxes on one machine (issue 20): each a network namespace with its own qbittorrent-nox
and `seedward serve`, sharing one PostgreSQL catalog and one S3 store (`rclone serve s3`), both on
the bridge's address of the test's own. Proves, with every component real:
  the same payload on two hosts is stored once; a host's damaged payload is healed from the shared
  store (chunks another host stored); a host killed mid-snapshot and the others go on (its stale
  lock expires, its job stays its own); `status` on one host shows the fleet (the dead one gone);
  the dead host's torrents are adopted by another host from the store, and the index its death
  left unfinished is rebuilt from the packs."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from companion.catalog import Catalog
from tests import netns
from tests.helpers import flip_byte, make_torrent, wait_until, write_payload
from tests.pgserver import PgServer
from tests.pgserver import missing as pg_missing
from tests.s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.qbt]

SEEDWARD = shutil.which("seedward") or str(Path(sys.executable).parent / "seedward")
PIECE = 32768


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Host:
    def __init__(self, root: Path, net: netns.Net, ns: str, owner: str, pg: PgServer, s3: S3Server, trail: Path,
                 **extra):
        self.root, self.ns, self.owner, self.net = root, ns, owner, net
        self.home = root / "home"
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.qbt = netns.NetnsQbt(root / "qbt", ns, net.address[ns]).start()
        conf = s3.client_config(root / "rclone.conf")
        service = "".join(f"{k} = {v}\n" for k, v in extra.get("service", {}).items())
        (self.home / "config.toml").write_text(
            f'[qbittorrent]\nurl = "{self.qbt.local_url}"\nusername = "{self.qbt.username}"\npoll_seconds = 0.3\n'
            f'backoff_max_seconds = 2.0\n\n[service]\njobs = 1\nremoval_grace_seconds = 600.0\n{service}\n'
            f'[protection.default]\nlevel = "snapshot"\nresponse = "heal"\n\n'
            f'[catalog]\nurl = "{pg.url}"\nowner = "{owner}"\nheartbeat_seconds = 1.0\n\n'
            f'[store]\nremote = "fleet:shared/store"\nrclone_config = "{conf}"\nlock_expiry_seconds = 12\n'
            f'pack_size_mb = 1\n\n[manifests]\nremote = "{trail}"\npush_minutes = 0.02\n')
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")},
                    "SEEDWARD_HOME": str(self.home), "QBITTORRENTAPI_PASSWORD": self.qbt.password,
                    **extra.get("env", {})}
        self.proc = None

    def serve(self) -> "Host":
        log = open(self.root / "serve.log", "ab")
        self.proc = subprocess.Popen([*self.net.prefix_cmd(self.ns), SEEDWARD, "serve"], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def seedward(self, *args, check=True) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.net.prefix_cmd(self.ns), SEEDWARD, *args], env=self.env, capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, r.stderr + r.stdout
        return r

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.qbt.stop()


def sample(root: Path, name: str, size: int, private: bool = False, seed: int = 7) -> Path:
    content = write_payload(root / name, {"track1.flac": size, "track2.flac": size // 3, "cover.jpg": 9000}, seed=seed)
    return make_torrent(content, PIECE, "hybrid", out=root.parent / f"{name}{'-p' if private else ''}.torrent",
                        private=private)


def packs(s3) -> set[str]:
    """Pack objects complete on the server (its temporary upload files start with a dot)."""
    root = s3.data / "shared" / "store" / "data"
    return {p.name for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")} if root.exists() else set()


def torrent_id(qbt, torrent: Path) -> str:
    from companion.torrent import load_torrent

    return load_torrent(torrent).id


@pytest.fixture
def fleet(tmp_path):
    for why in (netns.missing(), pg_missing(), None if shutil.which("qbittorrent-nox") else "no qbittorrent-nox"):
        if why:
            pytest.skip(why)
    net = netns.Net(3).up()
    pg = s3 = None
    hosts: list[Host] = []
    try:
        pg = PgServer(host=net.server, allow=net.subnet).start()
        s3 = S3Server(host=net.server).start()
        s3.bucket("shared")
        trail = tmp_path / "trail.git"
        subprocess.run(["git", "init", "-q", "--bare", str(trail)], check=True)
        names = ("host-a", "host-b", "host-c")
        for i, (ns, owner) in enumerate(zip(net.names, names)):
            extra = {"env": {"RCLONE_BWLIMIT": "400k"}} if owner == "host-c" else {}  # C's uploads are slow
            hosts.append(Host(tmp_path / owner, net, ns, owner, pg, s3, trail, **extra))
        for h in hosts:
            h.serve()
        cat = Catalog(pg.url, owners=("test",))
        yield hosts, cat, pg, s3, trail
        cat.close()
    finally:
        for h in hosts:  # (shown only when the test failed: pytest prints a failing test's output)
            log = h.root / "serve.log"
            print(f"--- {h.owner} serve.log (tail) ---\n{log.read_text(errors='replace')[-4000:] if log.exists() else '-'}")
        for h in hosts:
            try:
                h.stop()
            except Exception:  # noqa: BLE001 - tear down the rest whatever happened
                pass
        if s3:
            s3.stop()
        if pg:
            pg.stop()
        net.down()


def protected_with_snapshot(cat, tid: str):
    row = cat.one("SELECT protection, owner FROM torrents WHERE id = ?", (tid,))
    snap = cat.one("SELECT * FROM snapshots WHERE torrent_id = ? ORDER BY created_at DESC LIMIT 1", (tid,))
    return snap if row and row["protection"] == "protected" and snap else None


def test_three_seedboxes_share_one_catalog_and_one_store(fleet):
    (a, b, c), cat, pg, s3, trail = fleet
    wait_until(lambda: len([r for r in cat.query("SELECT * FROM services WHERE stopped_at IS NULL")]) == 3, 60, 0.2,
               "three services on the catalog")

    # 1. the same payload on two hosts (a cross-seed: same files, another info hash) is stored once
    t_a = sample(a.data, "Album", 300_000)
    t_b = sample(b.data, "Album", 300_000, private=True)
    id_a, id_b = torrent_id(a.qbt, t_a), torrent_id(b.qbt, t_b)
    assert id_a != id_b
    a.qbt.add_torrent(t_a, a.data)
    snap_a = wait_until(lambda: protected_with_snapshot(cat, id_a), 120, 0.3, "host-a protected and snapshotted")
    b.qbt.add_torrent(t_b, b.data)
    snap_b = wait_until(lambda: protected_with_snapshot(cat, id_b), 120, 0.3, "host-b protected and snapshotted")
    assert snap_a["new_bytes"] > 0 and snap_b["bytes"] == snap_a["bytes"]  # (new_bytes: chunks the store lacked)
    assert snap_b["new_bytes"] == 0  # every chunk already in the shared store
    owners = {r["id"]: r["owner"] for r in cat.query("SELECT id, owner FROM torrents")}
    assert owners == {id_a: "host-a", id_b: "host-b"}

    # 2. host-b's payload damaged: healed from the shared store (chunks host-a uploaded)
    victim = b.data / "Album" / "track1.flac"
    good = sha(victim)
    flip_byte(victim, 5 * PIECE + 99)
    heal = wait_until(lambda: cat.one("SELECT * FROM heals WHERE torrent_id = ? AND outcome = 'healed'", (id_b,)),
                      120, 0.3, "host-b's drift healed")
    assert sha(victim) == good and heal["source"].startswith(("snapshot", "ladder"))
    assert cat.one("SELECT COUNT(*) AS n FROM heals WHERE torrent_id = ?", (id_a,))["n"] == 0  # a's copy untouched

    # 3. host-c: one torrent snapshotted, then killed in the middle of the next snapshot's uploads
    t_c1 = sample(c.data, "Small", 60_000, seed=11)
    id_c1 = torrent_id(c.qbt, t_c1)
    c.qbt.add_torrent(t_c1, c.data)
    wait_until(lambda: protected_with_snapshot(cat, id_c1), 180, 0.3, "host-c's first torrent snapshotted")
    packs_before = packs(s3)
    t_c2 = sample(c.data, "Big", 2_400_000, seed=12)  # ~3 MB at 400 kB/s: seconds of uploads
    id_c2 = torrent_id(c.qbt, t_c2)
    c.qbt.add_torrent(t_c2, c.data)
    wait_until(lambda: cat.one("SELECT 1 FROM queue WHERE owner = 'host-c' AND kind = 'snapshot' AND state = 'running'")
               and packs(s3) - packs_before, 180, 0.05,
               "host-c uploading its snapshot")
    c.kill()
    assert cat.one("SELECT COUNT(*) AS n FROM snapshots WHERE torrent_id = ?", (id_c2,))["n"] == 0

    # ... and the others go on: host-a protects and snapshots a new torrent (c's lock goes stale)
    t_a2 = sample(a.data, "After", 90_000, seed=13)
    id_a2 = torrent_id(a.qbt, t_a2)
    a.qbt.add_torrent(t_a2, a.data)
    wait_until(lambda: protected_with_snapshot(cat, id_a2), 180, 0.3, "host-a goes on after host-c died")
    running = cat.one("SELECT owner FROM queue WHERE torrent_id = ? AND state = 'running'", (id_c2,))
    assert running["owner"] == "host-c"  # nobody else took the dead host's job

    # 4. `status` on host-a shows the fleet, host-c gone
    def fleet_view():
        data = json.loads(a.seedward("status", "--json").stdout)
        members = {m["owner"]: m for m in data["service"]["fleet"]["members"]}
        return members if not members["host-c"]["alive"] else None

    members = wait_until(fleet_view, 60, 0.5, "host-c shown as gone")
    assert members["host-a"]["alive"] and members["host-b"]["alive"]
    assert members["host-a"]["torrents"]["protected"] == 2 and members["host-b"]["torrents"]["protected"] == 1
    text = a.seedward("status").stdout
    assert "fleet: 3 members, 2 alive" in text and "host-c" in text and "GONE" in text and "[host-b]" in text

    # 5. host-c's disk dies; host-b adopts its torrents from the shared store
    expected = sha(c.data / "Small" / "track1.flac")
    shutil.rmtree(c.data)
    shutil.rmtree(c.home)
    out = json.loads(b.seedward("fleet", "adopt", "host-c", "--to", str(b.data / "adopted"), "--json").stdout)
    assert [t["id"] for t in out["adopted"]] == [id_c1]
    assert [(t["id"], t["why"]) for t in out["left"]] == [(id_c2, "no snapshot in the store")]
    wait_until(lambda: (r := protected_with_snapshot(cat, id_c1)) and cat.one(
        "SELECT owner FROM torrents WHERE id = ?", (id_c1,))["owner"] == "host-b" and r, 120, 0.3,
        "the adopted torrent protected by host-b")
    assert sha(b.data / "adopted" / "Small" / "track1.flac") == expected
    states = {t["hash"]: t["state"] for t in b.qbt.client.torrents_info()}
    assert id_c1 in states and id_a not in states

    # 6. the index rebuilt from the packs alone (every pack host-c uploaded before it died is read, the
    # ones no index named included), and the fleet's snapshots still restore from it
    rebuilt = json.loads(b.seedward("fleet", "rebuild-index", "--json").stdout)
    assert rebuilt["packs"] == len(packs(s3)) and rebuilt["chunks"] > 0 and not rebuilt["unreadable"]
    b.seedward("restore", id_a[:16], "--snapshot", snap_a["id"][:16], "--to", str(b.root / "check"))
    assert sha(b.root / "check" / "Album" / "track1.flac") == good

    # 7. the audit trail stays per host, each pushed to its own branch of the shared git remote
    def trail_of(owner):
        r = subprocess.run(["git", "--git-dir", str(trail), "log", "--format=%s", f"seedward/{owner}"],
                           capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else ""

    wait_until(lambda: "Album" in trail_of("host-a") and "Album" in trail_of("host-b")
               and "Small" in trail_of("host-b"), 60, 0.3, "each host's trail on its branch")
    assert "After" in trail_of("host-a") and "After" not in trail_of("host-b")

    # 8. no background loop of the two live hosts failed (the drill schedule's query once failed on
    # PostgreSQL every minute, and only the log said so). A job may still fail once on a refused
    # connection to the store under load; that is the job's to retry, not a loop's.
    for h in (a, b):
        failed = [line for line in (h.root / "serve.log").read_text(errors="replace").splitlines()
                  if " ERROR " in line and "step failed" in line]
        assert failed == [], f"{h.owner}: {failed[:5]}"
