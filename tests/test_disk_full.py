"""Full disks: small tmpfs filesystems of the test's own (mounted as root) under the store, the state
home, the jobs folder and the drill scratch. Every ENOSPC is one line naming the path and the space
needed, exit code 6, nothing partial left; the service keeps running and resumes when room returns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from companion.errors import EXIT_DISK_FULL
from tests.helpers import make_torrent, seedward, wait_until, write_payload


class SmallDisk:
    """A tmpfs of `size` bytes at `path`, resizable; unmounted at the end."""

    def __init__(self, path: Path, size: int):
        self.path = path
        path.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True,
                       capture_output=True)

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> Path:
        """A filler file taking all but `leave` bytes."""
        filler = self.path / "filler"
        with open(filler, "ab") as fh:
            room = self.free() - leave
            while room > 0:
                try:
                    fh.write(b"\0" * min(room, 1 << 20))
                    fh.flush()
                except OSError:
                    break
                room = self.free() - leave
        return filler

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file())

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def _can_mount(tmp: Path) -> bool:
    if os.geteuid() != 0:
        return False
    probe = tmp / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    return ok


@pytest.fixture
def small_disk(tmp_path):
    if not _can_mount(tmp_path):
        pytest.skip("needs root to mount a tmpfs of the test's own")
    disks = []

    def make(name: str, size: int) -> SmallDisk:
        disk = SmallDisk(tmp_path / name, size)
        disks.append(disk)
        return disk

    yield make
    for disk in disks:
        disk.unmount()


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def configured_home(tmp_path, config: str) -> tuple[Path, str]:
    """A state home with this config.toml and the 3.2 MB torrent `big` cataloged: (home, its id)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(config)
    return home, cataloged(tmp_path, home)


def cataloged(tmp_path, home: Path, sizes=None) -> str:
    seed = tmp_path / "seed"
    write_payload(seed / "big", sizes or {"a.bin": 3_000_000, "b.bin": 200_000}, seed=5)
    torrent = make_torrent(seed / "big", out=tmp_path / "big.torrent")
    proc = seedward("catalog", "add", torrent, seed, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["id"]


def test_a_full_store_refuses_the_snapshot_in_one_line_and_leaves_nothing(tmp_path, small_disk):
    disk = small_disk("store-disk", 1 << 20)
    home, tid = configured_home(tmp_path, f'[store]\npath = "{disk.path / "store"}"\n')
    proc = seedward("snapshot", tid, home=home)
    assert proc.returncode == EXIT_DISK_FULL
    line = one_line(proc.stderr)
    assert str(disk.path / "store") in line and "no space left" in line and "needs 3.1 MiB" in line, line
    # Nothing partial: no pack, no staged file, no snapshot tree, no record.
    assert [f for f in disk.files() if not f.endswith(("config.json", "lock"))] == []
    assert json.loads(seedward("snapshots", "--json", home=home).stdout)["snapshots"] == []
    disk.resize(16 << 20)
    proc = seedward("snapshot", tid, home=home)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(seedward("snapshots", "--json", home=home).stdout)["snapshots"]) == 1


def test_a_full_state_home_is_one_line_and_the_next_try_works(tmp_path, small_disk):
    disk = small_disk("home-disk", 8 << 20)
    home = disk.path / "home"
    cataloged(tmp_path, home, {"a.bin": 50_000})
    filler = disk.fill()
    seed2 = tmp_path / "seed2"
    write_payload(seed2 / "other", {"b.bin": 60_000}, seed=6)
    torrent = make_torrent(seed2 / "other", out=tmp_path / "other.torrent")
    proc = seedward("catalog", "add", torrent, seed2, home=home)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr
    line = one_line(proc.stderr)
    assert str(home) in line and "no space left" in line and "needs" in line, line
    assert not [p for p in home.rglob("*.tmp")]  # no temp file left
    filler.unlink()
    proc = seedward("catalog", "add", torrent, seed2, home=home)
    assert proc.returncode == 0, proc.stderr
    ids = {t["id"] for t in json.loads(seedward("status", "--json", home=home).stdout)["torrents"]}
    assert len(ids) == 2


def test_a_job_whose_scratch_fills_fails_with_its_json_and_no_partial_copy(tmp_path, small_disk):
    disk = small_disk("jobs-disk", 1 << 20)
    home, tid = configured_home(tmp_path, f'[jobs]\nsandbox = "none"\nworkdir = "{disk.path}"\n')
    proc = seedward("job", "run", "--torrent", tid, "--model", "m", "--model-version", "1", "--json", "--",
                    sys.executable, "-c", "pass", home=home)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "failed" and str(disk.path) in out["error"] and "needs 3.1 MiB" in out["error"]
    assert not list(disk.path.rglob("input"))  # the private copy is gone


@pytest.mark.qbt
def test_the_service_keeps_running_on_a_full_store_and_resumes_when_room_returns(qbt, make_service, tmp_path,
                                                                                small_disk):
    from companion.control import request
    from companion.service.features import install_features
    from tests.qbt import seed_sample, service_settings

    disk = small_disk("store-disk", 1 << 20)
    settings = service_settings(qbt)
    settings.store.path = str(disk.path / "store")
    service = make_service(settings=settings)
    install_features(service, ("companion.store.job",))  # "snapshot" jobs
    tid, _torrent = seed_sample(qbt, tmp_path / "data", "big", {"a.bin": 2_500_000, "b.bin": 300_000}, seed=9)

    def events(kind):
        return [e for e in service.catalog.events() if e["kind"] == kind]

    try:
        wait_until(lambda: events("disk_full"), 60, what="the snapshot to hit the full store")
    except AssertionError:
        raise AssertionError([(e["kind"], e["message"][:200]) for e in service.catalog.events()])
    full = events("disk_full")[0]
    assert str(disk.path / "store") in full["message"] and "needs 2.7 MiB" in full["message"]
    assert request(service.home, "ping")["pid"] == os.getpid()  # still serving
    assert [j["kind"] for j in service.catalog.pending_jobs()] == ["snapshot"]  # queued again, not failed
    assert [f for f in disk.files() if "tmp" in f or "packs" in f] == []  # no partial pack
    disk.resize(32 << 20)
    wait_until(lambda: events("disk_space_back") and not service.catalog.pending_jobs(), 60,
               what="the snapshot once there is room")
    from companion.store import Store

    store = Store.open(disk.path / "store", service.catalog)
    assert [s.torrent_id for s in store.snapshots(tid)] == [tid]


def test_a_drill_whose_scratch_is_too_small_says_so_with_exit_6(tmp_path, small_disk):
    disk = small_disk("scratch-disk", 1 << 20)
    home, tid = configured_home(tmp_path, f'[drill]\nscratch = "{disk.path / "scratch"}"\n')
    assert seedward("snapshot", tid, home=home).returncode == 0
    proc = seedward("drill", tid, "--json", home=home)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr
    drill = json.loads(proc.stdout)["drills"][0]
    assert not drill["ok"] and str(disk.path / "scratch") in drill["error"] and "needs 3,200,000 bytes" in drill["error"]
    assert one_line(proc.stderr).startswith("seedward: drill of")
    assert disk.files() == []  # nothing written


@pytest.mark.qbt
def test_a_full_quarantine_keeps_nothing_half_and_the_heal_follows_when_room_returns(qbt, tmp_path, small_disk):
    """The service's drift response on a real qbittorrent-nox with the quarantine on a full tmpfs: the heal
    does not write over drifted bytes it could not keep; one line names the quarantine and the space; no
    partial `.drift` folder; once there is room the retry keeps the bytes and heals."""
    from companion.catalog import drift as drift_rows
    from companion.catalog import snapshots as snap_rows
    from companion.control import request
    from companion.drift.service import install
    from companion.home import Home
    from companion.service import Service
    from companion.store.job import register as register_snapshots
    from tests.helpers import flip_byte
    from tests.qbt import seed_sample, service_settings

    home = Home(tmp_path / "home")
    disk = small_disk("home/quarantine", 1 << 20)
    settings = service_settings(qbt)
    service = Service(home, settings)
    register_snapshots(service)
    component = install(service)
    service.start()
    try:
        tid, _torrent = seed_sample(qbt, tmp_path / "dl", "Tagged", {"track.flac": 90_000}, seed=21)
        target = tmp_path / "dl" / "Tagged" / "track.flac"
        original = target.read_bytes()
        wait_until(lambda: service.catalog.get_torrent(tid) and service.catalog.get_torrent(tid)["protection"]
                   == "protected" and snap_rows.list_snapshots(service.catalog) and tid in
                   component.monitor.watch.tracked() and not service.catalog.pending_jobs(), 60,
                   what="protected, snapshotted, watched")
        filler = disk.fill()
        flip_byte(target, 40_000)
        failed = wait_until(lambda: [e for e in service.catalog.events(tid, 50) if "no space left" in e["message"]],
                            60, what="the heal to hit the full quarantine")
        line = failed[0]["message"]
        assert str(disk.path) in line and "needs 16.0 KiB" in line and "\n" not in line, line
        assert target.read_bytes() != original  # nothing written over bytes it could not keep
        assert disk.files() == ["filler"]  # no partial folder
        assert request(home, "ping")["pid"] == os.getpid()
        filler.unlink()
        wait_until(lambda: target.read_bytes() == original, 120, what="the heal once there is room")
        healed = wait_until(lambda: [r for r in drift_rows.heals(service.catalog, tid) if r["outcome"] == "healed"],
                            30, what="the heal recorded (the bytes are written back before it is)")
        assert Path(healed[0]["quarantine"]).is_relative_to(disk.path)
        assert any(f.endswith("drift.json") for f in disk.files())
    finally:
        service.stop()
        qbt.client.torrents_delete(delete_files=False, torrent_hashes="all")


def test_a_full_archive_folder_or_restore_target_is_exit_6_and_leaves_nothing(tmp_path, small_disk):
    """`archive create` with the set's build folder on a full disk, then `archive restore` into a full
    one: exit 6 naming the folder and the room the set needs (7-Zip's own "errno=28" used to end as a
    bad-input exit 2), nothing half-built there or on the remote, and the same commands work once
    there is room."""
    remote = tmp_path / "remote"
    remote.mkdir()
    home, tid = configured_home(tmp_path, f'[archive]\nremote = "{remote}"\nvolume_kb = 64\n')
    assert seedward("snapshot", tid, home=home).returncode == 0
    (tmp_path / "pass").write_text("a passphrase for the full-disk test\n")
    disk = small_disk("home/archive", 1 << 20)  # the outbox and staging live here
    create = ("archive", "create", "--tier", "weekly", "--passphrase-file", tmp_path / "pass")
    proc = seedward(*create, home=home)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr
    line = one_line(proc.stderr)
    assert str(disk.path) in line and "no space left" in line and "needs " in line and "needs more" not in line, line
    assert [f for f in disk.files() if f != "lock"] == [] and list(remote.iterdir()) == []
    assert json.loads(seedward("archive", "list", "--json", home=home).stdout)["sets"] == []
    disk.resize(64 << 20)
    proc = seedward(*create, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    set_id = json.loads(proc.stdout)["set_id"]
    target = small_disk("target", 1 << 20)
    proc = seedward("archive", "restore", set_id, "--to", target.path / "restored", "--passphrase-file",
                    tmp_path / "pass", home=home)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr
    line = one_line(proc.stderr)
    import re

    need = re.search(r"needs ([0-9.]+) MiB", line)
    assert str(target.path) in line and need and float(need.group(1)) >= 3.1, line  # the payload, at least
    assert target.files() == [] and not any(target.path.iterdir())
    target.resize(64 << 20)
    proc = seedward("archive", "restore", set_id, "--to", target.path / "restored", "--passphrase-file",
                    tmp_path / "pass", home=home)
    assert proc.returncode == 0, proc.stderr
    assert (target.path / "restored" / "payload" / tid / "big" / "a.bin").stat().st_size == 3_000_000
