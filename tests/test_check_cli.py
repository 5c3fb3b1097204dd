"""`seedward check`: the real command, its --json schema, exit codes and bad input."""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import libtorrent as lt
import pytest

from tests.helpers import seedward, without_file_privileges
from tests.scan_cases import KIB, NAME, UNICODE, build, damage, multi_layout, sha256sum

HEX = set("0123456789abcdef")


def tree_state(root: Path) -> dict:
    """Every path under root with its size and mtime: what 'nothing written' compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def assert_one_line_error(proc, *names):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("seedward: ")
    for name in names:
        assert str(name) in lines[0]
    assert proc.stdout == ""


@pytest.fixture
def hybrid(tmp_path):
    return build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")


def test_json_schema_intact(tmp_path, hybrid):
    proc = seedward("check", hybrid.torrent, hybrid.save, "--json", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"ok", "info_hash_v1", "info_hash_v2", "piece_size", "pieces", "bad_pieces", "files"}
    ti = lt.torrent_info(str(hybrid.torrent))
    assert out["ok"] is True
    assert out["info_hash_v1"] == str(ti.info_hashes().v1)
    assert out["info_hash_v2"] == str(ti.info_hashes().v2)
    assert len(out["info_hash_v1"]) == 40 and len(out["info_hash_v2"]) == 64
    assert out["piece_size"] == 16 * KIB and out["pieces"] == ti.num_pieces()
    assert out["bad_pieces"] == []
    # Pad files are not listed; paths are libtorrent's, in libtorrent's order.
    assert [f["path"] for f in out["files"]] == list(hybrid.files)
    for f in out["files"]:
        assert set(f) == {"path", "size", "sha256", "status"}
        assert f["status"] == "ok"
        assert f["size"] == hybrid.files[f["path"]]
        assert f["sha256"] == sha256sum(hybrid.save / f["path"])
    assert not (tmp_path / "home").exists(), "check writes nothing, not even the state home"


@pytest.mark.parametrize("creator", ["v1", "v2", "mktorrent"])
def test_json_damaged_exit_1(tmp_path, creator):
    built = build(tmp_path, multi_layout(32 * KIB), 32 * KIB, creator)
    expect = damage(built, "flip", f"{NAME}/{UNICODE}")
    damage(built, "missing", f"{NAME}/one.txt")
    damage(built, "extend", f"{NAME}/exact.bin")
    proc = seedward("check", built.torrent, built.save, "--json", home=tmp_path / "home")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is False
    assert out["info_hash_v1"] is None if creator == "v2" else len(out["info_hash_v1"]) == 40
    assert out["info_hash_v2"] is None if creator != "v2" else len(out["info_hash_v2"]) == 64
    statuses = {f["path"]: f["status"] for f in out["files"]}
    assert statuses[f"{NAME}/{UNICODE}"] == "damaged"
    assert statuses[f"{NAME}/one.txt"] == "missing"
    assert statuses[f"{NAME}/exact.bin"] == "size_mismatch"
    missing = next(f for f in out["files"] if f["path"] == f"{NAME}/one.txt")
    assert missing["sha256"] is None
    assert set(out["bad_pieces"]) >= expect.bad
    assert out["bad_pieces"] == sorted(expect.bad | built.pieces_of(f"{NAME}/one.txt", 0, 1))


def test_human_report(tmp_path, hybrid):
    proc = seedward("check", hybrid.torrent, hybrid.save, home=tmp_path / "home")
    assert proc.returncode == 0 and "intact" in proc.stdout
    damage(hybrid, "flip", f"{NAME}/CD1/a.flac")
    proc = seedward("check", hybrid.torrent, hybrid.save, home=tmp_path / "home")
    assert proc.returncode == 1
    assert "DAMAGED" in proc.stdout and "Album/CD1/a.flac" in proc.stdout and "bad pieces:" in proc.stdout


# Bad input: exit 2, one line naming the file, nothing written.

def _garbage(p: Path) -> Path:
    p.write_bytes(b"this is not a torrent\n")
    return p


def _truncated(p: Path, good: Path) -> Path:
    raw = good.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    return p


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _not_a_dict(p: Path) -> Path:
    p.write_bytes(lt.bencode([1, 2, 3]))  # valid bencode, not a dict
    return p


@pytest.mark.parametrize("make", ["garbage", "truncated", "empty", "not_a_dict", "directory", "absent"])
def test_bad_torrent_file(tmp_path, hybrid, make):
    bad = tmp_path / "bad.torrent"
    if make == "garbage":
        _garbage(bad)
    elif make == "truncated":
        _truncated(bad, hybrid.torrent)
    elif make == "empty":
        _empty(bad)
    elif make == "not_a_dict":
        _not_a_dict(bad)
    elif make == "directory":
        bad.mkdir()
    before = tree_state(tmp_path)
    proc = seedward("check", bad, hybrid.save, "--json", home=tmp_path / "home")
    assert_one_line_error(proc, bad)
    assert tree_state(tmp_path) == before


def _crafted(tmp_path: Path, info: dict) -> Path:
    """A torrent whose info dict we choose, encoded by libtorrent (no hand-written bencode)."""
    out = tmp_path / "crafted.torrent"
    out.write_bytes(lt.bencode({b"info": _bytes_keys(info)}))
    return out


def _bytes_keys(obj):
    if isinstance(obj, dict):
        return {k.encode(): _bytes_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_bytes_keys(v) for v in obj]
    return obj.encode() if isinstance(obj, str) else obj


def _v1_info(files, name="Album"):
    total = sum(length for length, _ in files)
    pieces = -(-total // (16 * KIB))
    return {"name": name, "piece length": 16 * KIB, "pieces": b"\x00" * 20 * max(1, pieces),
            "files": [{"length": length, "path": path} for length, path in files]}


@pytest.mark.parametrize("info", [
    _v1_info([(5, ["..", "..", "etc", "passwd"])]),
    _v1_info([(5, ["ok", "..", "escape"])]),
    _v1_info([(5, ["a/../../b"])]),
    _v1_info([(5, ["x"])], name=".."),
    dict(_v1_info([(5, ["x"])]), **{"name.utf-8": ".."}),
], ids=["dotdot", "dotdot-inner", "dotdot-in-element", "name-dotdot", "name-utf8-dotdot"])
def test_unsafe_names_in_torrent(tmp_path, info):
    save = tmp_path / "save"
    save.mkdir()
    torrent = _crafted(tmp_path, info)
    before = tree_state(tmp_path)
    proc = seedward("check", torrent, save, home=tmp_path / "home")
    assert_one_line_error(proc, torrent, "unsafe path in torrent or payload: traversal rule:")
    assert "'..'" in proc.stderr and "//" not in proc.stderr
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("info,placed", [
    (_v1_info([(5, ["/etc", "passwd"])]), "Album/etc/passwd"),
    (_v1_info([(5, ["x"])], name="/abs"), "abs/x"),
], ids=["absolute", "name-absolute"])
def test_absolute_names_are_placed_where_libtorrent_puts_them(tmp_path, info, placed):
    """libtorrent drops the leading separator and keeps the file inside the save path; so does seedward."""
    save = tmp_path / "save"
    (save / placed).parent.mkdir(parents=True)
    torrent = _crafted(tmp_path, info)
    proc = seedward("check", torrent, save, "--json", home=tmp_path / "home")
    assert proc.returncode == 1, proc.stderr
    assert [(f["path"], f["status"]) for f in json.loads(proc.stdout)["files"]] == [(placed, "missing")]


def test_unsafe_name_in_v2_file_tree(tmp_path):
    save = tmp_path / "save"
    (save / "Album").mkdir(parents=True)
    (save / "Album" / "x").write_bytes(b"hello")
    good = lt.bdecode(Path(_v2_torrent(tmp_path, save)).read_bytes())
    tree = good[b"info"][b"file tree"]
    tree[b".."] = tree.pop(b"x")
    torrent = tmp_path / "evil.torrent"
    torrent.write_bytes(lt.bencode(good))
    proc = seedward("check", torrent, save, home=tmp_path / "home")
    assert_one_line_error(proc, torrent)


def _v2_torrent(tmp_path, save):
    from tests.helpers import make_torrent

    return make_torrent(save / "Album", 16 * KIB, "v2", out=tmp_path / "good.torrent")


def test_save_path_missing(tmp_path, hybrid):
    nowhere = tmp_path / "no" / "such" / "dir"
    proc = seedward("check", hybrid.torrent, nowhere, home=tmp_path / "home")
    assert_one_line_error(proc, nowhere, "does not exist")
    assert not (tmp_path / "no").exists()


def test_save_path_is_a_file(tmp_path, hybrid):
    proc = seedward("check", hybrid.torrent, hybrid.torrent, home=tmp_path / "home")
    assert_one_line_error(proc, hybrid.torrent, "not a directory")


def test_directory_where_a_file_should_be(tmp_path, hybrid):
    target = hybrid.save / NAME / "CD1" / "a.flac"
    target.unlink()
    target.mkdir()
    proc = seedward("check", hybrid.torrent, hybrid.save, "--json", home=tmp_path / "home")
    assert_one_line_error(proc, target, "directory")


@pytest.mark.parametrize("what", ["file", "folder"])
def test_symlink_out_of_the_save_path(tmp_path, hybrid, what):
    outside = tmp_path / "outside"
    outside.mkdir()
    if what == "file":
        link = hybrid.save / NAME / "CD1" / "a.flac"
        shutil.move(link, outside / "a.flac")  # same bytes: refused for where it points, not for its content
        link.symlink_to(outside / "a.flac")
    else:
        link = hybrid.save / NAME / "CD1"
        shutil.move(link, outside / "CD1")
        link.symlink_to(outside / "CD1", target_is_directory=True)
    before = tree_state(tmp_path)
    proc = seedward("check", hybrid.torrent, hybrid.save, home=tmp_path / "home")
    assert_one_line_error(proc, "unsafe path", str(hybrid.save / NAME / "CD1"))
    assert tree_state(tmp_path) == before


def test_symlink_inside_the_save_path_is_followed(tmp_path, hybrid):
    target = hybrid.save / NAME / "CD1" / "b.flac"
    kept = hybrid.save / "elsewhere.bin"
    shutil.move(target, kept)
    target.symlink_to(kept)
    proc = seedward("check", hybrid.torrent, hybrid.save, "--json", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr


def test_unreadable_file(tmp_path, hybrid):
    prefix = without_file_privileges()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    # A world-traversable copy of the payload, with one file nobody may read.
    root = Path(tempfile.mkdtemp(prefix="seedward-unreadable-"))
    try:
        os.chmod(root, 0o755)
        save = root / "save"
        shutil.copytree(hybrid.save, save)
        shutil.copy(hybrid.torrent, root / "t.torrent")
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, 0o755)
            for f in filenames:
                os.chmod(Path(dirpath) / f, 0o644)
        locked = save / NAME / "CD1" / "b.flac"
        os.chmod(locked, 0o000)
        seedward_exe = shutil.which("seedward") or str(Path(os.sys.executable).parent / "seedward")
        env = dict(os.environ, SEEDWARD_HOME=str(root / "home"), HOME=str(root))
        proc = subprocess.run(prefix + [seedward_exe, "check", str(root / "t.torrent"), str(save)],
                              capture_output=True, text=True, env=env, cwd="/", timeout=120)
        assert_one_line_error(proc, locked, "permission denied")
        assert not (root / "home").exists()
    finally:
        shutil.rmtree(root)


def test_catalog_add_bad_input_leaves_no_rows(tmp_path, hybrid):
    home = tmp_path / "home"
    target = hybrid.save / NAME / "one.txt"
    target.unlink()
    target.mkdir()
    proc = seedward("catalog", "add", hybrid.torrent, hybrid.save, home=home)
    assert_one_line_error(proc, target)
    db = sqlite3.connect(home / "catalog.sqlite")
    for table in ("torrents", "files", "segments", "pieces", "runs"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    manifests = home / "manifests"
    if (manifests / ".git").exists():
        log = subprocess.run(["git", "-C", str(manifests), "log", "--oneline"], capture_output=True, text=True)
        assert log.stdout.strip() == ""
    bad = tmp_path / "bad.torrent"
    _garbage(bad)
    proc = seedward("catalog", "add", bad, hybrid.save, home=home)
    assert_one_line_error(proc, bad)
    assert db.execute("SELECT count(*) FROM torrents").fetchone()[0] == 0
