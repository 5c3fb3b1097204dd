"""Restore drills end to end: a real store, real libtorrent sessions, the real `seedward` command."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from companion.catalog import Catalog
from companion.catalog import drills as drill_rows
from companion.catalog.snapshots import snapshot_chunks
from companion.config import Settings
from companion.drill import Drill, cleanup_scratch, last_drills
from companion.drill.run import default_session, rpo_seconds
from companion.home import Home
from companion.scan import Scanner
from companion.store import Store
from companion.store.pack import pack_name
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, seedward, wait_until, write_payload

PIECE = 16384
FILES = {"a.bin": 6 * PIECE + 100, "sub/b.bin": 2 * PIECE + 5, "c.txt": 9, "empty": b""}
DRILL_KEYS = {"id", "snapshot", "ok", "restore_seconds", "verify_seconds", "recheck_seconds", "rto_seconds",
              "rpo_seconds", "bytes", "bad_pieces", "bad_files", "error"}


class Env:
    """A state home with a catalog, a store and one snapshotted torrent."""

    def __init__(self, tmp_path: Path, kind: str = "hybrid", snapshot: bool = True):
        self.tmp = tmp_path
        self.home = Home(tmp_path / "home").ensure()
        self.scratch = tmp_path / "scratch"
        self.home.config.write_text(f'[drill]\nscratch = "{self.scratch}"\ntimeout_seconds = 60.0\n')
        self.settings = Settings()
        self.settings.drill.scratch = str(self.scratch)
        self.settings.drill.timeout_seconds = 60.0
        self.cat = Catalog(self.home.catalog_db)
        self.store = Store.open(self.home.store, self.cat)
        self.save = tmp_path / "seeding"
        write_payload(self.save / "album", FILES)
        self.meta = load_torrent(make_torrent(self.save / "album", PIECE, kind, out=tmp_path / f"{kind}.torrent"))
        self.snap = None
        if snapshot:
            self.snap = self.store.snapshot(self.meta, self.save, "manual")
        else:
            self.cat.record_scan(Scanner().full_scan(self.meta, self.save), reason="test", save_path=str(self.save))
        self.before = self.fingerprint()

    def fingerprint(self) -> dict:
        return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(self.save.rglob("*")) if p.is_file()}

    def drill(self, session_factory=default_session, **kwargs):
        return Drill(self.cat, self.store, self.home, self.settings, session_factory).run(self.meta.id, **kwargs)

    def entry(self, suffix: str):
        return next(f for f in self.meta.real_files if f.path.endswith(suffix))

    def scratch_left(self) -> list[Path]:
        return list(self.scratch.iterdir()) if self.scratch.exists() else []

    def untouched(self) -> bool:
        return self.fingerprint() == self.before


def paused_session():
    """A real isolated session that never starts checking: libtorrent's checked alert never comes."""
    ses = default_session()
    ses.pause()
    return ses


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_drill_passes_with_swarm_proof(tmp_path, kind):
    env = Env(tmp_path, kind)
    result = env.drill(swarm=True)
    assert result.ok, result.error
    assert result.snapshot == env.snap.id
    assert result.bad_pieces == [] and result.bad_files == []
    assert result.bytes == env.meta.payload_size
    assert result.swarm_seconds is not None
    assert result.rto_seconds == pytest.approx(result.restore_seconds + result.verify_seconds + result.recheck_seconds)
    assert result.rpo_seconds == 0.0  # the snapshot was taken after the payload's last change
    assert env.scratch_left() == []
    assert env.untouched()
    row = drill_rows.get_drill(env.cat, result.drill_id)
    assert row["state"] == "passed" and row["swarm"] == 1 and row["swarm_seconds"] is not None
    assert env.cat.events(env.meta.id)[0]["kind"] == "drill_passed"


def test_corrupted_pack_fails_with_the_exact_files_and_pieces(tmp_path):
    env = Env(tmp_path, "v1")
    a = env.entry("a.bin")
    chunks = {(c["file_index"], c["piece"]): c["chunk_id"] for c in snapshot_chunks(env.cat, env.snap.id)}
    piece = a.offset // PIECE + 3
    seg_offset = next(c["offset"] for c in snapshot_chunks(env.cat, env.snap.id)
                      if (c["file_index"], c["piece"]) == (a.index, piece))
    (_o, _n, cid), = env.store.file_content(env.snap.id, a.index)  # a.bin is one content chunk
    stored = env.store.index.get(cid)
    flip_byte(env.store.backend.local_path(pack_name(stored.pack)), stored.offset + seg_offset + 100)

    result = env.drill()

    assert not result.ok
    assert result.bad_files == [a.path]
    assert result.bad_pieces == [piece]
    assert "store corrupt" in result.error and chunks[(a.index, piece)][:12] in result.error
    assert env.scratch_left() == [] and env.untouched()
    assert drill_rows.is_suspect(env.cat, env.snap.id)
    event = env.cat.events(env.meta.id)[0]
    assert event["kind"] == "drill_failed" and event["level"] == "error"

    proc = seedward("drill", env.meta.id[:10], "--json", home=env.home.root)
    assert proc.returncode == 1, proc.stderr
    [out] = json.loads(proc.stdout)["drills"]
    assert set(out) == DRILL_KEYS
    assert out["bad_files"] == [a.path] and out["bad_pieces"] == [piece] and out["ok"] is False

    # `seedward status` (no service running) shows the snapshot and the failed drill.
    status = seedward("status", "--json", home=env.home.root)
    assert status.returncode == 0, status.stderr
    [row] = [t for t in json.loads(status.stdout)["torrents"] if t["id"] == env.meta.id]
    assert row["snapshot"]["id"] == env.snap.id and row["last_drill"]["ok"] is False
    assert "FAILED" in seedward("status", home=env.home.root).stdout


def test_restored_file_not_matching_the_catalog_fails_the_drill(tmp_path):
    """The catalog's SHA-256 is the reference: a restore that differs from it fails."""
    env = Env(tmp_path, "hybrid")
    b = env.entry("b.bin")
    with env.cat.tx() as db:
        db.execute("UPDATE files SET sha256 = ? WHERE torrent_id = ? AND file_index = ?",
                   ("0" * 64, env.meta.id, b.index))
    result = env.drill()
    assert result.bad_files == [b.path] and result.bad_pieces == []
    assert not result.ok and result.error is None


def test_check_that_never_finishes_times_out_and_cleans_up(tmp_path):
    env = Env(tmp_path, "v2")
    env.settings.drill.timeout_seconds = 1.0
    result = env.drill(session_factory=paused_session)
    assert not result.ok
    assert "did not finish checking within 1s" in result.error
    assert env.scratch_left() == [] and env.untouched()
    row = drill_rows.get_drill(env.cat, result.drill_id)
    assert row["state"] == "failed" and "did not finish" in row["error"]
    assert not drill_rows.is_suspect(env.cat, env.snap.id)  # the drill's environment failed, not the snapshot
    assert env.cat.events(env.meta.id)[0]["level"] == "error"


def test_missing_snapshot_is_a_clear_error(tmp_path):
    env = Env(tmp_path, "v1", snapshot=False)
    proc = seedward("drill", env.meta.id, "--json", home=env.home.root)
    assert proc.returncode == 2
    [out] = json.loads(proc.stdout)["drills"]
    assert out["ok"] is False and out["snapshot"] == "" and "has no snapshot" in out["error"]
    assert "has no snapshot" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert env.scratch_left() == [] and env.untouched()
    [row] = drill_rows.list_drills(env.cat)
    assert row["state"] == "failed"

    proc = seedward("drill", env.meta.id, "--snapshot", "abcdef", home=env.home.root)
    assert proc.returncode == 2 and "has no snapshot 'abcdef'" in proc.stderr
    proc = seedward("drill", "0123", home=env.home.root)
    assert proc.returncode == 2 and "no torrent in the catalog matches" in proc.stderr


def test_scratch_inside_the_seeding_payload_is_refused(tmp_path):
    env = Env(tmp_path, "v1")
    env.settings.drill.scratch = str(env.save / "album" / "scratch")
    result = env.drill()
    assert not result.ok and "inside the seeding payload" in result.error
    assert not (env.save / "album" / "scratch").exists() and env.untouched()


CRASHER = """
import sys
from pathlib import Path
from companion.catalog import Catalog
from companion.config import load_settings
from companion.drill import Drill
from companion.drill.run import default_session
from companion.home import Home
from companion.store import Store

def paused():
    ses = default_session()
    ses.pause()
    return ses

home = Home(Path(sys.argv[1]))
settings = load_settings(home.config)
settings.drill.timeout_seconds = 600.0
cat = Catalog(home.catalog_db)
Drill(cat, Store.open(home.store, cat), home, settings, paused).run(sys.argv[2])
"""


def test_crash_mid_drill_is_cleaned_up_at_the_next_start(tmp_path):
    env = Env(tmp_path, "hybrid")
    a = env.entry("a.bin")
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(env.home.root), env.meta.id])
    try:
        # mid-drill: the restore is done and libtorrent is (never) checking it
        restored = wait_until(lambda: list(env.scratch.glob(f"drill-*/payload/{a.path}")), timeout=60,
                              what="the drill's restore")
        assert drill_rows.running_drills(env.cat)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert restored[0].exists()  # the crash left its scratch behind

    removed = cleanup_scratch(env.home, env.settings, env.cat)

    assert [p.name for p in removed] == [restored[0].relative_to(env.scratch).parts[0]]
    assert env.scratch_left() == []
    [row] = drill_rows.list_drills(env.cat)
    assert row["state"] == "failed" and "interrupted" in row["error"]
    assert drill_rows.running_drills(env.cat) == []
    assert env.untouched()


def test_next_cli_drill_removes_a_crashed_drills_scratch(tmp_path):
    env = Env(tmp_path, "v1")
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(env.home.root), env.meta.id])
    try:
        wait_until(lambda: list(env.scratch.glob("drill-*/payload/album/a.bin")), timeout=60, what="the restore")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    out = seedward("drill", "--all", "--swarm", "--json", home=env.home.root)
    assert out.returncode == 0, out.stderr
    [drill] = json.loads(out.stdout)["drills"]
    assert set(drill) == DRILL_KEYS and drill["ok"] and drill["id"] == env.meta.id
    assert env.scratch_left() == []
    states = sorted(r["state"] for r in drill_rows.list_drills(env.cat))
    assert states == ["failed", "passed"]

    listed = seedward("drills", env.meta.id[:8], "--json", home=env.home.root)
    assert listed.returncode == 0
    records = json.loads(listed.stdout)["drills"]
    assert [r["state"] for r in records] == ["passed", "failed"]
    assert records[0]["swarm"] is True and records[0]["rto_seconds"] > 0
    assert last_drills(env.cat)[0]["state"] == "passed"
    text = seedward("drills", home=env.home.root)
    assert "PASS" in text.stdout and "FAIL" in text.stdout and "interrupted" in text.stdout


def test_partial_snapshot_proves_only_its_files(tmp_path):
    env = Env(tmp_path, "hybrid", snapshot=False)
    a = env.entry("a.bin")
    snap = env.store.snapshot(env.meta, env.save, "manual", files=[a.index])
    result = env.drill(snapshot=snap.id[:10])
    assert result.ok, result.error
    assert result.snapshot == snap.id and result.bytes == a.size


def test_rpo_is_the_change_the_snapshot_misses():
    assert rpo_seconds(1000.0, [500 * 10**9, 900 * 10**9]) == 0.0
    assert rpo_seconds(1000.0, [1500 * 10**9, None]) == 500.0
    assert rpo_seconds(1000.0, [None]) is None
    assert rpo_seconds(None, [1]) is None


def test_scratch_disk_full_is_refused_before_writing(tmp_path, monkeypatch):
    env = Env(tmp_path, "v1")
    import companion.drill.scratch as scratch_mod

    real = scratch_mod.shutil.disk_usage
    monkeypatch.setattr(scratch_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    result = env.drill()
    assert not result.ok and "only 1,000 free" in result.error
    assert env.scratch_left() == [] and env.untouched()
    assert drill_rows.get_drill(env.cat, result.drill_id)["state"] == "failed"
    assert not drill_rows.is_suspect(env.cat, env.snap.id)


def test_cli_target_selection(tmp_path):
    env = Env(tmp_path, "v2")
    proc = seedward("drill", "--sample", "5", "--json", home=env.home.root)
    assert proc.returncode == 0, proc.stderr
    assert [d["id"] for d in json.loads(proc.stdout)["drills"]] == [env.meta.id]
    proc = seedward("drill", "--all", env.meta.id[:6], home=env.home.root)
    assert proc.returncode == 2 and "not several" in proc.stderr
    proc = seedward("drill", "--sample", "0", home=env.home.root)
    assert proc.returncode == 2 and "--sample" in proc.stderr
    text = seedward("drill", "--snapshot", env.snap.id[:8], home=env.home.root)
    assert text.returncode == 0 and text.stdout.startswith(f"PASS {env.meta.id[:12]} snapshot {env.snap.id[:12]}")


def test_libtorrent_error_fails_the_drill_and_cleans_up(tmp_path):
    env = Env(tmp_path, "hybrid")
    c = env.entry("c.txt")

    def breaking_session():
        # called right before the recheck: the restored file becomes something libtorrent cannot read
        [restored] = env.scratch.glob(f"drill-*/payload/{c.path}")
        restored.unlink()
        restored.mkdir()
        return default_session()

    result = env.drill(session_factory=breaking_session)
    assert not result.ok and "c.txt" in result.error and "Is a directory" in result.error
    assert env.scratch_left() == [] and env.untouched()
    assert drill_rows.get_drill(env.cat, result.drill_id)["state"] == "failed"
