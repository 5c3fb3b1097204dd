"""The input classes libtorrent accepts and a path-literal engine gets wrong (issue 15), each checked
against libtorrent's own recheck of the same bytes: renamed clashing paths, BEP 47 symlinks, v2
without piece layers, non-regular files, the .torrent itself."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import libtorrent as lt
import pytest

from companion import ltsession
from companion.errors import PayloadError
from companion.quickscan import quick_scan
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.helpers import flip_byte, make_torrent, without_file_privileges, write_payload
from tests.scan_cases import KIB, NAME, build, multi_layout, retitle

FLAGS = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}


@pytest.fixture(scope="module")
def session():
    ses = ltsession.isolated_session()
    yield ses
    del ses


def seedward_exe() -> str:
    return shutil.which("seedward") or str(Path(os.sys.executable).parent / "seedward")


def check(torrent, save, *extra, timeout=60) -> subprocess.CompletedProcess:
    """The real `seedward check`, with a timeout small enough to catch a hang."""
    env = dict(os.environ, SEEDWARD_HOME=str(Path(save).parent / "home"))
    return subprocess.run([seedward_exe(), "check", str(torrent), str(save), *extra], capture_output=True,
                          text=True, timeout=timeout, env=env)


def statuses(result) -> dict:
    return {f.entry.path: f.status for f in result.files}


# -- renamed clashing paths -----------------------------------------------------------------------

def _clashing(tmp_path, kind):
    """A torrent with two files named A/x1 (v1 only) and a file `a` beside the folder `A`."""
    src = tmp_path / "src"
    layout = {f"{NAME}/A/x1": 40000, f"{NAME}/b": 700}
    renames = {("b",): ("a",)}
    if kind == "v1":
        layout[f"{NAME}/A/x2"] = 30000
        renames[("A", "x2")] = ("A", "x1")
    write_payload(src, layout, seed=3)
    raw = retitle(make_torrent(src / NAME, 16 * KIB, kind).read_bytes(), renames)
    torrent = tmp_path / f"clash.{kind}.torrent"
    torrent.write_bytes(raw)
    return src, torrent, load_torrent(raw)


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_payload_where_libtorrent_puts_clashing_files(tmp_path, kind, session):
    src, torrent, meta = _clashing(tmp_path, kind)
    save = tmp_path / "save"
    literal = {f"{NAME}/A/x1": "A/x1", f"{NAME}/A/x1.1": "A/x2", f"{NAME}/a.1": "b"}
    for entry in meta.real_files:  # the bytes of each file at libtorrent's name for it
        dest = save / entry.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / NAME / literal[entry.path], dest)
    assert ltsession.recheck(meta.raw, save, timeout=60, session=session) == []
    result = Scanner().full_scan(meta, save)
    assert result.ok and set(statuses(result).values()) == {"ok"}
    proc = check(torrent, save, "--json")
    assert proc.returncode == 0, proc.stderr
    assert [f["path"] for f in json.loads(proc.stdout)["files"]] == [e.path for e in meta.real_files]
    assert f"{NAME}/a.1" in literal and (kind != "v1" or f"{NAME}/A/x1.1" in [e.path for e in meta.real_files])


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_payload_at_the_literal_paths_fails_where_libtorrent_fails(tmp_path, kind, session):
    src, torrent, meta = _clashing(tmp_path, kind)
    save = tmp_path / "save"
    shutil.copytree(src, save)
    (save / NAME / "a").write_bytes((save / NAME / "b").read_bytes())  # `a` as the torrent spells it
    want = sorted(ltsession.recheck(meta.raw, save, timeout=60, session=session))
    assert want, "libtorrent does not find the renamed files at the literal paths"
    result = Scanner().full_scan(meta, save)
    assert result.bad_pieces == want
    assert statuses(result)[f"{NAME}/a.1"] == "missing"
    assert check(torrent, save).returncode == 1


# -- BEP 47 symlinks --------------------------------------------------------------------------------

def _with_links(tmp_path, kind):
    root = tmp_path / "save" / NAME
    write_payload(tmp_path / "save", {f"{NAME}/d/a.bin": 50000, f"{NAME}/d/sub/c.bin": 3000, f"{NAME}/z.bin": 100})
    os.symlink("d/a.bin", root / "link")
    os.symlink("d", root / "dirlink")
    os.symlink("../a.bin", root / "d" / "sub" / "up")
    fs = lt.file_storage()
    lt.add_files(fs, str(root), flags=lt.create_torrent.symlinks)
    ct = lt.create_torrent(fs, 16 * KIB, FLAGS[kind] | lt.create_torrent.symlinks)
    lt.set_piece_hashes(ct, str(root.parent))
    torrent = tmp_path / f"links.{kind}.torrent"
    torrent.write_bytes(lt.bencode(ct.generate()))
    return root.parent, torrent, load_torrent(torrent)


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_intact_symlinks_verify_as_links(tmp_path, kind, session):
    save, torrent, meta = _with_links(tmp_path, kind)
    assert sum(1 for f in meta.files if f.symlink) == 3
    assert ltsession.recheck(meta.raw, save, timeout=60, session=session) == []
    result = Scanner().full_scan(meta, save)
    assert result.ok, statuses(result)
    links = [f for f in result.files if f.entry.symlink]
    assert all(f.sha256 is None and f.segments == [] and f.stat.size == len(f.entry.link_target) for f in links)
    proc = check(torrent, save)
    assert proc.returncode == 0 and "intact" in proc.stdout, proc.stdout + proc.stderr
    baseline = {f.entry.index: {s.piece: s.xxh3 for s in f.segments} for f in result.files}
    assert quick_scan(meta, save, baseline).ok


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("change,status", [("retarget", "damaged"), ("regular", "damaged"), ("remove", "missing")])
def test_a_changed_symlink_is_reported_never_followed(tmp_path, kind, change, status, session):
    save, torrent, meta = _with_links(tmp_path, kind)
    link = save / NAME / "link"
    link.unlink()
    if change == "retarget":
        os.symlink("z.bin", link)
    elif change == "regular":
        shutil.copyfile(save / NAME / "d" / "a.bin", link)  # the target's bytes, but not a link
    result = Scanner().full_scan(meta, save)
    assert statuses(result)[f"{NAME}/link"] == status
    assert [s for f, s in statuses(result).items() if f != f"{NAME}/link"] == ["ok"] * (len(result.files) - 1)
    assert result.bad_pieces == [] and not result.ok
    proc = check(torrent, save)
    assert proc.returncode == 1 and f"{status}" in proc.stdout and "Album/link" in proc.stdout
    quick = quick_scan(meta, save, {})
    assert {meta.files[f.file_index].path: f.status for f in quick.files}[f"{NAME}/link"] == status
    # libtorrent (last: it writes) makes a missing link and refuses a path that is not the link it wants.
    if change == "remove":
        assert ltsession.recheck(meta.raw, save, timeout=60, session=session) == []
        assert os.readlink(link) == "d/a.bin"
    else:
        with pytest.raises(ltsession.RecheckError, match="symlink"):
            ltsession.recheck(meta.raw, save, timeout=60, session=session)


# -- v2 without piece layers ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["v2", "hybrid"])
@pytest.mark.parametrize("damage", ["none", "flip", "truncate"])
def test_v2_without_piece_layers_verifies_from_the_pieces_root(tmp_path, kind, damage, session):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, kind)
    doc = lt.bdecode(built.torrent.read_bytes())
    del doc[b"piece layers"]
    raw = lt.bencode(doc)
    meta = load_torrent(raw)
    target = built.save / NAME / "CD1" / "a.flac"
    if damage == "flip":
        flip_byte(target, 20000)
    elif damage == "truncate":
        os.truncate(target, 20000)
    want = sorted(ltsession.recheck(raw, built.save, timeout=60, session=session))
    result = Scanner().full_scan(meta, built.save)
    assert result.bad_pieces == want
    assert result.ok == (damage == "none")
    got = statuses(result)
    assert got[f"{NAME}/CD1/a.flac"] == {"none": "ok", "flip": "damaged", "truncate": "size_mismatch"}[damage]
    assert {p: s for p, s in got.items() if p != f"{NAME}/CD1/a.flac"} == \
        {p: "ok" for p in got if p != f"{NAME}/CD1/a.flac"}
    assert all(f.v2_root == f.entry.root for f in result.files if f.status == "ok" and f.entry.size)


# -- non-regular files ------------------------------------------------------------------------------

def _replace_with(kind: str, path: Path):
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
        return None
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        return sock
    if kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero's numbers
        return None
    raise ValueError(kind)


@pytest.mark.parametrize("kind,name", [("fifo", "a FIFO"), ("socket", "a socket"), ("device", "a character device")])
def test_non_regular_payload_file_is_refused_unread(tmp_path, kind, name):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    target = built.save / NAME / "CD1" / "b.flac"
    keep = _replace_with(kind, target)
    try:
        proc = check(built.torrent, built.save, "--json")  # a FIFO opened for reading would hang here
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(target) in lines[0] and f"is {name} where a file should be" in lines[0]
        meta = load_torrent(built.torrent)
        with pytest.raises(PayloadError, match=name):
            quick_scan(meta, built.save, {})
    finally:
        if keep is not None:
            keep.close()


def test_fifo_as_torrent_file(tmp_path):
    fifo = tmp_path / "t.torrent"
    os.mkfifo(fifo)
    (tmp_path / "save").mkdir()
    proc = check(fifo, tmp_path / "save")
    assert proc.returncode == 2 and str(fifo) in proc.stderr and "is a FIFO, not a .torrent file" in proc.stderr


def test_dev_zero_as_torrent_file_is_not_read(tmp_path):
    (tmp_path / "save").mkdir()
    proc = subprocess.run(["/usr/bin/env", "bash", "-c", 'ulimit -v 1048576; exec "$0" check /dev/zero "$1"',
                           seedward_exe(), str(tmp_path / "save")], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, SEEDWARD_HOME=str(tmp_path / "home")))
    assert proc.returncode == 2, proc.stderr
    assert "/dev/zero: is a character device, not a .torrent file" in proc.stderr


def test_unreadable_torrent_file_says_so(tmp_path):
    prefix = without_file_privileges()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    root = Path(tempfile.mkdtemp(prefix="seedward-unreadable-torrent-"))
    try:
        os.chmod(root, 0o755)
        built = build(root, multi_layout(16 * KIB), 16 * KIB, "v1")
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, 0o755)
            for f in filenames:
                os.chmod(Path(dirpath) / f, 0o644)
        os.chmod(built.torrent, 0o000)
        proc = subprocess.run(prefix + [seedward_exe(), "check",
                               str(built.torrent), str(built.save)], capture_output=True, text=True, timeout=60,
                              cwd="/", env=dict(os.environ, SEEDWARD_HOME=str(root / "home"), HOME=str(root)))
        assert proc.returncode == 2, proc.stderr
        assert f"{built.torrent}: cannot read the .torrent file: permission denied" in proc.stderr
        assert "not a valid torrent" not in proc.stderr
    finally:
        shutil.rmtree(root)


def test_a_file_where_a_folder_should_be_means_missing(tmp_path, session):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "v1")
    folder = built.save / NAME / "CD1"
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")
    meta = load_torrent(built.torrent)
    result = Scanner().full_scan(meta, built.save)
    assert statuses(result)[f"{NAME}/CD1/a.flac"] == statuses(result)[f"{NAME}/CD1/b.flac"] == "missing"
    assert set(result.bad_pieces) >= built.pieces_of(f"{NAME}/CD1/a.flac", 0, built.files[f"{NAME}/CD1/a.flac"])
    with pytest.raises(ltsession.RecheckError, match="Not a directory"):  # libtorrent cannot check it either
        ltsession.recheck(meta.raw, built.save, timeout=60, session=session)


def test_reading_never_blocks_on_a_fifo_swapped_in(tmp_path, monkeypatch):
    """The lstat says regular; the open is non-blocking and checked again with fstat."""
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    real_open = os.open
    target = str(built.save / NAME / "one.txt")

    def swapping_open(path, flags, *args, **kwargs):
        if str(path) == target:
            os.unlink(target)
            os.mkfifo(target)
        return real_open(path, flags, *args, **kwargs)

    done = []

    def scan():
        try:
            Scanner().full_scan(meta, built.save)
        except PayloadError as exc:
            done.append(str(exc))

    monkeypatch.setattr(os, "open", swapping_open)
    worker = threading.Thread(target=scan, daemon=True)
    worker.start()
    worker.join(30)
    monkeypatch.undo()
    assert done and "is a FIFO where a file should be" in done[0]
