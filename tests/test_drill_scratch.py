"""Drill scratch folders (fresh, marked, removed after a crash), space checks and the SHA-256 pass."""

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from companion.config import Settings
from companion.drill.scratch import (
    MARKER, Scratch, ScratchFull, ScratchUnsafe, check_not_seeding_path, check_space, cleanup_scratch, scratch_root,
)
from companion.drill.verify import Expected, verify_files
from companion.home import Home
from tests.helpers import write_payload


def settings_with_scratch(path: Path) -> Settings:
    s = Settings()
    s.drill.scratch = str(path)
    return s


def test_scratch_is_fresh_marked_and_removed(tmp_path):
    with Scratch(tmp_path / "scratch", "abc") as scratch:
        assert scratch.path == tmp_path / "scratch" / "drill-abc"
        assert (scratch.path / MARKER).is_file() and scratch.payload.is_dir() and scratch.swarm.is_dir()
        (scratch.payload / "f").write_bytes(b"x")
    assert not scratch.path.exists()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_scratch_root_comes_from_config_or_home(tmp_path):
    home = Home(tmp_path / "home")
    assert scratch_root(home, Settings()) == home.scratch
    assert scratch_root(home, settings_with_scratch(tmp_path / "elsewhere")) == tmp_path / "elsewhere"


HOLDER = """
import sys, time
from pathlib import Path
from companion.drill.scratch import Scratch
s = Scratch(Path(sys.argv[1]), sys.argv[2]).create()
(s.payload / "big").write_bytes(b"x" * 1000)
print("ready", flush=True)
time.sleep(600)
"""


def test_cleanup_removes_only_what_dead_drills_left(tmp_path):
    root = tmp_path / "scratch"
    home = Home(tmp_path / "home")
    settings = settings_with_scratch(root)
    dead = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "dead"], stdout=subprocess.PIPE, text=True)
    alive = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "alive"], stdout=subprocess.PIPE, text=True)
    try:
        assert dead.stdout.readline().strip() == "ready"
        assert alive.stdout.readline().strip() == "ready"
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait()
        # things that are not ours stay: a user's folder, a drill-like folder without a marker
        (root / "user-stuff").mkdir()
        (root / "user-stuff" / "keep.txt").write_text("mine")
        (root / "drill-nomarker").mkdir()
        (root / ".stage-crashed").mkdir()  # a crash between mkdir and the marker write

        removed = cleanup_scratch(home, settings)

        assert sorted(p.name for p in removed) == [".stage-crashed", "drill-dead"]
        assert not (root / "drill-dead").exists()
        assert (root / "drill-alive" / "payload" / "big").is_file()
        assert (root / "user-stuff" / "keep.txt").read_text() == "mine"
        assert (root / "drill-nomarker").is_dir()
    finally:
        alive.kill()
        alive.wait()
    cleanup_scratch(home, settings)
    assert not (root / "drill-alive").exists()


def test_cleanup_of_a_missing_scratch_folder_is_a_no_op(tmp_path):
    assert cleanup_scratch(Home(tmp_path / "home"), settings_with_scratch(tmp_path / "none")) == []


def test_space_check_refuses_before_writing(tmp_path):
    free = __import__("shutil").disk_usage(tmp_path).free
    with pytest.raises(ScratchFull, match="only .* free"):
        check_space(tmp_path, free + 1)
    with pytest.raises(ScratchFull, match="scratch_max_mb"):
        check_space(tmp_path, 2 * 2**20, max_bytes=2**20)
    check_space(tmp_path, 1024, max_bytes=2**20)
    assert list(tmp_path.iterdir()) == []


def test_scratch_never_overlaps_the_seeding_payload(tmp_path):
    save = tmp_path / "downloads"
    (save / "album").mkdir(parents=True)
    with pytest.raises(ScratchUnsafe, match="inside the seeding payload"):
        check_not_seeding_path(save / "album" / "scratch", str(save), {"album"})
    with pytest.raises(ScratchUnsafe, match="contains the seeding path"):
        check_not_seeding_path(tmp_path, str(save), {"album"})
    check_not_seeding_path(save / "scratch", str(save), {"album"})  # beside the payload is fine
    check_not_seeding_path(tmp_path / "elsewhere", str(save), {"album"})


def test_verify_files_names_bad_missing_and_resized_files(tmp_path):
    write_payload(tmp_path, {"t/a": 300_000, "t/b": 1000, "t/c": 5, "t/d": 77, "t/e": b""})
    digest = {n: hashlib.sha256((tmp_path / "t" / n).read_bytes()).hexdigest() for n in "abcde"}
    (tmp_path / "t" / "b").write_bytes(b"y" * 1000)  # same size, other bytes
    (tmp_path / "t" / "c").unlink()
    with open(tmp_path / "t" / "d", "ab") as fh:
        fh.write(b"!")
    expected = [Expected(f"t/{n}", s, digest[n]) for n, s in (("a", 300_000), ("b", 1000), ("c", 5), ("d", 77),
                                                               ("e", 0))]
    expected.append(Expected("t/a", 300_000, None))
    result = verify_files(tmp_path, expected, workers=2)
    assert result.bad_files == ["t/b", "t/c", "t/d"]
    assert result.unverified == ["t/a"]
