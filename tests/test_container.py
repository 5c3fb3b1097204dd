"""qBittorrent in a container (issue 17 item 1), for real: qbittorrent-nox runs in a mount namespace
of its own (`unshare -m`, as root) where the downloads are a bind mount at another path than on this
host, and the hook folder another bind mount, as a linuxserver/hotio container with `-v` volumes has
them. Nothing is mocked: the service, the CLI and qBittorrent's own "run external program" are real.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from companion.config import Settings
from companion.control import request
from companion.demo.private_qbt import QbtProcess
from companion.home import Home
from companion.spool import torrent_id_of
from companion.service import Service
from companion.torrent import load_torrent
from tests.helpers import make_torrent, seedward, wait_until, write_payload
from tests.qbt import qbt_tags

pytestmark = [pytest.mark.qbt, pytest.mark.slow]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare -m (mount namespaces)")


class Container:
    """Where things are: `data` on this host is `inside / "data"` for qBittorrent, `hook` is `inside / "seedward"`;
    `inside` itself is a tmpfs only qBittorrent's namespace has (so its paths do not exist here)."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "host" / "data"
        self.hook = root / "host" / "seedward-hook"
        self.inside = root / "ns"  # empty here; a tmpfs holding data/ and seedward/ in qBittorrent's namespace
        for p in (self.data, self.hook, self.inside):
            p.mkdir(parents=True)
        wrapper = root / "qbittorrent-in-namespace"
        script = ('mount -t tmpfs -o size=1m,mode=755 tmpfs "$0" && mkdir "$0/data" "$0/seedward" && '
                  'mount --bind "$1" "$0/data" && mount --bind "$2" "$0/seedward" && shift 2 && exec "$QBT" "$@"')
        wrapper.write_text("#!/bin/sh\n"
                           f'QBT={shutil.which("qbittorrent-nox")} exec {shutil.which("unshare")} -m --propagation '
                           f"private -- /bin/sh -c '{script}' \"{self.inside}\" \"{self.data}\" \"{self.hook}\" \"$@\"\n")
        wrapper.chmod(0o755)
        self.qbt = QbtProcess(root / "qbittorrent", exe=str(wrapper))

    @property
    def path_map(self) -> list:
        return [[str(self.inside / "data"), str(self.data)], [str(self.inside / "seedward"), str(self.hook)]]

    def settings(self, *, path_map: bool = True, hook: bool = False) -> Settings:
        s = Settings()
        q = s.qbittorrent
        q.url, q.username, q.password = self.qbt.url, self.qbt.username, self.qbt.password
        q.poll_seconds = 0.2
        q.backoff_max_seconds = 2.0
        q.path_map = self.path_map if path_map else []
        q.hook_dir = str(self.hook) if hook else ""
        s.service.removal_grace_seconds = 2.0
        s.service.reach_seconds = 0.5
        s.scrub.interval_hours = 0
        return s

    def config_toml(self, home: Path, secret: Path) -> None:
        secret.write_text(self.qbt.password + "\n")
        secret.chmod(0o600)
        pairs = ", ".join(f'["{q}", "{h}"]' for q, h in self.path_map)
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[qbittorrent]\nurl = "{self.qbt.url}"\nusername = "{self.qbt.username}"\npassword_file = "{secret}"\n'
            f'path_map = [{pairs}]\nhook_dir = "{self.hook}"\n')

    def add(self, name: str, files: dict, seed: int) -> tuple[str, Path]:
        """A payload written on this host under data/, added to qBittorrent at the path it sees."""
        content = write_payload(self.data / name, files, seed=seed)
        torrent = make_torrent(content, piece_size=16384, kind="hybrid", out=self.root / f"{name}.torrent")
        return self.qbt.add_torrent(torrent, self.inside / "data", skip_checking=False), torrent


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    if not _can_unshare():
        pytest.skip("needs root and unshare -m (mount namespaces)")
    c = Container(tmp_path_factory.mktemp("container"))
    c.qbt.start()
    yield c
    c.qbt.stop()


def service(box, home: Path, **kw) -> Service:
    from companion.drift.service import install
    from companion.store.job import register as register_snapshots

    s = Service(Home(home), box.settings(**kw))
    register_snapshots(s)
    install(s)
    return s.start()


def protection(s: Service, tid: str) -> str | None:
    row = s.catalog.get_torrent(tid)
    return row["protection"] if row else None


@needs_unshare
def test_the_downloads_are_elsewhere_inside(box):
    """The setup is what a container gives: qBittorrent's path does not exist on this host."""
    tid, _ = box.add("Probe", {"p.bin": 20_000}, seed=1)
    info = box.qbt.client.torrents_info(torrent_hashes=tid)[0]
    assert info["save_path"].rstrip("/") == str(box.inside / "data") and info["progress"] == 1  # it checked them
    assert not (box.inside / "data").exists() and (box.data / "Probe" / "p.bin").is_file()
    box.qbt.client.torrents_delete(delete_files=False, torrent_hashes=tid)


@needs_unshare
def test_without_path_map_unreachable_with_the_hint_then_protected_once_mapped(box, tmp_path):
    tid, _ = box.add("Album", {"01.flac": 60_000, "02.flac": 45_000}, seed=2)
    home = tmp_path / "home"
    s = service(box, home, path_map=False)
    try:
        wait_until(lambda: protection(s, tid) == "unreachable", 60, what="unreachable without path_map")
        wait_until(lambda: "seedward:unreachable" in qbt_tags(box.qbt, tid), 30, what="the unreachable tag")
        status = request(s.home, "status")
        entry = next(t for t in status["torrents"] if t["id"] == tid)
        assert entry["protection"] == "unreachable"
        assert "does not exist on this host" in entry["unreachable"]["reason"]
        assert "[qbittorrent] path_map" in entry["unreachable"]["hint"]
        event = next(e for e in request(s.home, "events", since=0)["events"] if e["kind"] == "unreachable")
        assert event["torrent_id"] == tid and "path_map" in event["message"]
        table = seedward("status", home=home).stdout
        assert "unreachable" in table
        # never protected while unreachable: several syncs and reach checks later it is still so
        syncs = s.sync.syncs
        wait_until(lambda: s.sync.syncs >= syncs + 10, 30, what="ten more syncs")
        assert protection(s, tid) == "unreachable" and not s.catalog.get_files(tid)
        assert "seedward:protected" not in qbt_tags(box.qbt, tid)
    finally:
        s.stop()
    offline = json.loads(seedward("status", "--json", home=home).stdout)  # no service: from the catalog
    entry = next(t for t in offline["torrents"] if t["id"] == tid)
    assert entry["protection"] == "unreachable" and "path_map" in entry["unreachable"]["hint"]
    assert "does not exist on this host" in entry["unreachable"]["reason"]
    # The same home, with path_map: qBittorrent's path is this host's, the payload is verified there.
    s = service(box, home)
    try:
        wait_until(lambda: protection(s, tid) == "protected", 60, what="protected once mapped")
        row = s.catalog.get_torrent(tid)
        assert row["save_path"] == str(box.data)  # the catalog holds this host's paths
        assert {f["path"] for f in s.catalog.get_files(tid)} == {"Album/01.flac", "Album/02.flac"}
        wait_until(lambda: "seedward:protected" in qbt_tags(box.qbt, tid) and "seedward:unreachable" not in
                   qbt_tags(box.qbt, tid), 30, what="the tag to follow")
        kinds = [e["kind"] for e in request(s.home, "events", since=0)["events"] if e["torrent_id"] == tid]
        assert "reachable" in kinds or "protected" in kinds
        # no hook is installed: the sync loop alone found and protected it
        prefs = box.qbt.client.app_preferences()
        assert "seedward" not in (prefs.get("autorun_on_torrent_added_program") or "")
        # a location seedward gives is mapped back: qBittorrent moves the files inside its namespace
        moved = box.data / "moved"
        s.qbt.set_location(tid, moved)
        wait_until(lambda: (box.qbt.client.torrents_info(torrent_hashes=tid)[0]["save_path"].rstrip("/")
                            == str(box.inside / "data" / "moved")), 60, what="qBittorrent's move")
        wait_until(lambda: (moved / "Album" / "01.flac").is_file() and s.catalog.get_torrent(tid)["save_path"] == str(moved)
                   and protection(s, tid) == "protected", 60, what="the catalog to follow the move")
        # seedward adds a torrent at a host path: qBittorrent gets its own path for it
        content = write_payload(box.data / "Added", {"x.bin": 30_000}, seed=9)
        raw = make_torrent(content, kind="v1", out=box.root / "Added.torrent").read_bytes()
        s.qbt.add_torrent(raw, box.data)
        added = load_torrent(raw).id
        box.qbt.wait_complete(added)
        assert box.qbt.client.torrents_info(torrent_hashes=added)[0]["save_path"].rstrip("/") == str(box.inside / "data")
        wait_until(lambda: protection(s, added) == "protected", 60, what="the added torrent protected")
    finally:
        s.stop()
        box.qbt.remove_all()


@needs_unshare
def test_the_container_hook_spools_events_the_service_takes(box, tmp_path):
    """`seedward qbt install-hook` with hook_dir: qBittorrent runs the sh hook inside its namespace by
    the path it sees; its spool entry reaches the service (stopped meanwhile: the spool alone carries it)."""
    home = tmp_path / "home"
    box.config_toml(home, tmp_path / "webui-password")
    out = seedward("qbt", "install-hook", "--json", home=home)
    assert out.returncode == 0, out.stderr
    changes = json.loads(out.stdout)["changes"]
    inside_script = box.inside / "seedward" / "seedward-hook.sh"
    prefs = box.qbt.client.app_preferences()
    assert prefs["autorun_on_torrent_added_enabled"] and prefs["autorun_on_torrent_added_program"].startswith(
        f'/bin/sh "{inside_script}" added "%I" "%J" "%N" "%D" "%F"')
    assert all(c["container"] for c in changes if c["changed"])
    assert (box.hook / "seedward-hook.sh").is_file() and (box.hook / "spool").is_dir()
    try:
        tid, _ = box.add("Hooked", {"h.bin": 35_000}, seed=3)  # no service running
        def spooled():
            entries = sorted(p for p in (box.hook / "spool").iterdir() if p.suffix == ".args")
            return [p.read_bytes().split(b"\0") for p in entries] or None

        raw = wait_until(spooled, 30, what="qBittorrent's hook to spool the event")
        # "added" (and "finished" once qBittorrent's check of the files ends), with qBittorrent's own paths
        assert raw[0][0] == b"added" and {r[0] for r in raw} <= {b"added", b"finished"}
        assert all(torrent_id_of(r[1].decode(), r[2].decode()) == tid for r in raw)  # %I/%J: v1 and v2 hashes
        assert all(r[4].decode().rstrip("/") == str(box.inside / "data") for r in raw)
        settings_home = Home(home)
        from companion.config import load_settings

        s = Service(settings_home, load_settings(settings_home.config, env={}))
        s.settings.qbittorrent.poll_seconds = 0.2
        s.start()
        try:
            wait_until(lambda: protection(s, tid) == "protected", 60, what="the hooked torrent protected")
            hooks = [e for e in request(s.home, "events", since=0)["events"] if e["kind"] == "hook" and e["torrent_id"] == tid]
            assert hooks and hooks[0]["detail"]["source"] == "spool" and hooks[0]["detail"]["instance"] == "default"
            assert hooks[0]["detail"]["save_path"].rstrip("/") == str(box.data)  # mapped to this host's path
            assert not [p for p in (box.hook / "spool").iterdir() if p.suffix == ".args"]  # drained
        finally:
            s.stop()
    finally:
        out = seedward("qbt", "uninstall-hook", home=home)
        assert out.returncode == 0, out.stderr
        assert "seedward" not in (box.qbt.client.app_preferences().get("autorun_on_torrent_added_program") or "")
        box.qbt.remove_all()


@needs_unshare
def test_qbt_backup_and_restore_through_the_mapping(box, tmp_path):
    """The backup keeps this host's paths; a restore hands qBittorrent its own, and seedward verifies
    the payload at the host path before skipping qBittorrent's check."""
    home = tmp_path / "home"
    box.config_toml(home, tmp_path / "webui-password")
    tid, _ = box.add("Kept", {"k.bin": 50_000}, seed=4)
    out = seedward("qbt", "backup", "--json", home=home)
    assert out.returncode == 0, out.stderr
    doc = json.loads((home / "manifests" / "qbittorrent" / "torrents" / f"{tid}.json").read_text())
    assert doc["save_path"].rstrip("/") == str(box.data)
    box.qbt.client.torrents_delete(delete_files=False, torrent_hashes=tid)
    wait_until(lambda: not box.qbt.client.torrents_info(torrent_hashes=tid), 30, what="the removal")
    out = seedward("qbt", "restore", "--json", home=home)
    assert out.returncode == 0, out.stderr
    (added,) = json.loads(out.stdout)["added"]
    assert added["checked_by"] == "seedward"
    info = wait_until(lambda: box.qbt.client.torrents_info(torrent_hashes=tid), 30, what="the restored torrent")[0]
    assert info["save_path"].rstrip("/") == str(box.inside / "data") and info["progress"] == 1
    box.qbt.remove_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root)")
def test_a_protected_torrents_disk_unmounted_is_unreachable_and_nothing_is_healed_onto_the_mount_point(
        qbt, make_service, tmp_path):
    """The disk under a protected torrent goes away (unmounted): its folder is an empty mount point on
    another filesystem. The torrent becomes unreachable, nothing is written there, and it is protected
    again once the disk is back."""
    from companion.drift.service import install
    from companion.store.job import register as register_snapshots
    from tests.qbt import service_settings

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        content = write_payload(disk / "Show", {"e1.mkv": 70_000, "e2.mkv": 50_000}, seed=5)
        keep = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in content.iterdir()}
        torrent = make_torrent(content, kind="hybrid", out=tmp_path / "Show.torrent")
        settings = service_settings(qbt)
        settings.service.reach_seconds = 0.5
        settings.scrub.interval_hours = 0
        s = Service(Home(tmp_path / "home"), settings)
        register_snapshots(s)
        install(s)
        s.start()
        try:
            tid = qbt.add_torrent(torrent, disk)
            wait_until(lambda: protection(s, tid) == "protected" and s.catalog.get_files(tid), 60, what="protected")
            subprocess.run(["umount", "-l", str(disk)], check=True)  # the disk goes away (busy or not)
            wait_until(lambda: protection(s, tid) == "unreachable", 60, what="unreachable once the disk is gone")
            event = next(e for e in request(s.home, "events", since=0)["events"]
                         if e["kind"] == "unreachable" and e["torrent_id"] == tid)
            assert "another filesystem" in event["message"] or "does not exist" in event["message"]
            time.sleep(2)  # a few reach checks and drift passes: still nothing written onto the mount point
            assert list(disk.iterdir()) == [] and protection(s, tid) == "unreachable"
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
            (disk / "Show").mkdir()
            for name, (data, mtime) in keep.items():
                (disk / "Show" / name).write_bytes(data)
                os.utime(disk / "Show" / name, ns=(mtime, mtime))
            wait_until(lambda: protection(s, tid) == "protected" and "seedward:protected" in qbt_tags(qbt, tid)
                       and "seedward:unreachable" not in qbt_tags(qbt, tid), 60, what="protected again once the disk is back")
        finally:
            s.stop()
            qbt.remove_all()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_folder_moved_away_and_back_is_followed_without_rehashing(qbt, tmp_path):
    """The save path goes away (renamed, a share unmounted): unreachable, and an Apprise notification
    says so. Back with its files unchanged (same inodes, sizes, times): protected again from the
    catalog, without a second full read."""
    from companion.notify import register as register_notify
    from tests.qbt import service_settings
    from tests.webhook import Receiver

    dl = tmp_path / "dl"
    content = write_payload(dl / "Season", {"e1.mkv": 60_000, "e2.mkv": 30_000}, seed=6)
    torrent = make_torrent(content, kind="v1", out=tmp_path / "Season.torrent")
    settings = service_settings(qbt)
    settings.service.reach_seconds = 0.5
    hook = Receiver()
    settings.notify.urls = [hook.url("/seedward")]
    qbt.remove_all()
    s = Service(Home(tmp_path / "home"), settings)
    register_notify(s)
    s.start()
    try:
        tid = qbt.add_torrent(torrent, dl)
        wait_until(lambda: protection(s, tid) == "protected", 60, what="protected")
        verified = s.catalog.get_torrent(tid)["last_verified"]
        dl.rename(tmp_path / "dl.away")
        wait_until(lambda: protection(s, tid) == "unreachable", 60, what="unreachable while the folder is away")
        assert "does not exist on this host" in request(s.home, "status")["torrents"][0]["unreachable"]["reason"]
        note = wait_until(lambda: next((p["body"] for p in hook.posts if "unreachable" in str(p["body"])), None), 60,
                          what="the unreachable notification")
        assert "Season" in json.dumps(note) and "path_map" in json.dumps(note)
        (tmp_path / "dl.away").rename(dl)
        wait_until(lambda: protection(s, tid) == "protected", 60, what="protected again")
        assert s.catalog.get_torrent(tid)["last_verified"] == verified  # followed, not read again
        kinds = [e["kind"] for e in request(s.home, "events", since=0)["events"] if e["torrent_id"] == tid]
        assert kinds.count("unreachable") == 1 and "reachable" in kinds
    finally:
        s.stop()
        hook.close()
        qbt.remove_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root)")
def test_folders_going_and_coming_back_in_random_order_keep_every_state_true(qbt, tmp_path):
    """A small soak: two disks (tmpfs mounts) and a plain folder go away and come back in a random order
    (seeded) under a running service with drift watching. After each step settles, every torrent is
    `unreachable` exactly when its folder is not reachable and `protected` otherwise; at every sample in
    between, no torrent is ever `damaged` or `healing` (an unmount is not drift) and nothing is written
    under a mount point while its disk is away; at the end every payload is byte for byte the same."""
    import random
    import threading

    from companion.drift.service import install
    from tests.qbt import service_settings

    rng = random.Random(17)
    places = {"disk1": tmp_path / "disk1", "disk2": tmp_path / "disk2", "plain": tmp_path / "plain"}
    for p in places.values():
        p.mkdir()
    mounted = set()

    def mount(name):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(places[name])], check=True)
        mounted.add(name)

    for name in ("disk1", "disk2"):
        mount(name)
    originals, ids = {}, {}
    try:
        for n, (name, where) in enumerate(sorted(places.items())):
            content = write_payload(where / f"T{n}", {"a.bin": 40_000 + n, "b.bin": 20_000}, seed=20 + n)
            originals[name] = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in content.iterdir()}
            torrent = make_torrent(content, kind="hybrid", out=tmp_path / f"T{n}.torrent")
            ids[name] = qbt.add_torrent(torrent, where)
        settings = service_settings(qbt)
        settings.service.reach_seconds = 0.3
        settings.scrub.interval_hours = 0
        s = Service(Home(tmp_path / "home"), settings)
        install(s)
        s.start()
        away: set = set()
        seen_bad: list = []
        stop = threading.Event()

        def observe():
            while not stop.wait(0.05):
                for name, tid in ids.items():
                    state = protection(s, tid)
                    if state in ("damaged", "healing"):
                        seen_bad.append((name, state))
                for name in away & {"disk1", "disk2"}:
                    if places[name].exists() and any(places[name].iterdir()):
                        seen_bad.append((name, "written onto the mount point"))

        def settled():
            return all(protection(s, ids[n]) == ("unreachable" if n in away else "protected") for n in ids) \
                and not s.catalog.pending_jobs()

        try:
            wait_until(settled, 60, what="every torrent protected")
            watcher = threading.Thread(target=observe, daemon=True)
            watcher.start()
            for _step in range(8):
                name = rng.choice(sorted(places))
                if name in away:  # back: the disk mounted again with the same files, or the folder renamed back
                    if name == "plain":
                        (tmp_path / "plain.away").rename(places[name])
                    else:
                        mount(name)
                        n = sorted(places).index(name)
                        (places[name] / f"T{n}").mkdir()
                        for f, (data, mtime) in originals[name].items():
                            (places[name] / f"T{n}" / f).write_bytes(data)
                            os.utime(places[name] / f"T{n}" / f, ns=(mtime, mtime))
                    away.discard(name)
                else:
                    if name == "plain":
                        places[name].rename(tmp_path / "plain.away")
                    else:
                        subprocess.run(["umount", "-l", str(places[name])], check=True)
                        mounted.discard(name)
                    away.add(name)
                wait_until(settled, 60, what=f"the states after {name} {'left' if name in away else 'came back'}")
                assert not seen_bad, seen_bad
        finally:
            stop.set()
            s.stop()
        for name in sorted(away):  # everything back for the final check
            if name == "plain":
                (tmp_path / "plain.away").rename(places[name])
        for name, files in originals.items():
            if name in away and name != "plain":
                continue
            n = sorted(places).index(name)
            assert {p.name: p.read_bytes() for p in (places[name] / f"T{n}").iterdir()} == \
                {f: data for f, (data, _m) in files.items()}
    finally:
        qbt.remove_all()
        for name in mounted:
            subprocess.run(["umount", "-l", str(places[name])], capture_output=True)
