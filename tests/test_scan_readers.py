"""The engine's reader threads (issue 15 item 6): the bytes of bigger files are read by two
threads, a window each, and hashed in window order. Their verdicts must be exactly those of the
calling thread reading in order, and a file that shrinks under a queued read must not get hashes
of bytes it no longer has."""

import os
import threading

import pytest

from companion import scan as scan_mod
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.scan_cases import KIB, NAME, UNICODE, build, damage, multi_layout


def summary(result) -> tuple:
    return (result.bad_pieces, [(f.entry.path, f.status, f.sha256, [(s.piece, s.offset, s.length, s.xxh3, s.root,
                                                                      s.sha1) for s in f.segments])
                                for f in result.files])


@pytest.mark.parametrize("creator", ["v1", "hybrid", "v2"])
@pytest.mark.parametrize("kind,path", [("none", None), ("flip", f"{NAME}/{UNICODE}"),
                                       ("truncate", f"{NAME}/CD1/a.flac"), ("extend", f"{NAME}/exact.bin"),
                                       ("missing", f"{NAME}/CD1/b.flac")])
def test_reader_threads_agree_with_reading_in_order(tmp_path, monkeypatch, creator, kind, path):
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, creator)
    if path is not None:
        damage(built, kind, path)
    meta = load_torrent(built.torrent)
    small = dict(buffer_bytes=32 * KIB, buffers=3, inline_bytes=4 * KIB)  # many windows, files queued
    readers = []
    real = scan_mod.read_at

    def noting(fd, view, offset, path):
        readers.append(threading.current_thread().name)
        return real(fd, view, offset, path)

    monkeypatch.setattr(scan_mod, "read_at", noting)
    queued = Scanner(readers=2, **small).full_scan(meta, built.save)
    assert any(name.startswith("scan-read") for name in readers)  # the queued path did the reading
    readers.clear()
    in_order = Scanner(readers=0, **small).full_scan(meta, built.save)
    assert readers and not any(name.startswith("scan-read") for name in readers)
    monkeypatch.undo()
    assert summary(queued) == summary(in_order)
    assert queued.ok == (kind == "none")


def test_a_file_shrinking_under_a_queued_read_is_read_again(tmp_path, monkeypatch):
    """The file is truncated just before a reader thread's first read of it: the scan is done
    again in order, and what it says is what a scan of the shrunk file says."""
    built = build(tmp_path, multi_layout(16 * KIB), 16 * KIB, "hybrid")
    meta = load_torrent(built.torrent)
    target = built.save / NAME / UNICODE
    real = scan_mod.read_at
    cut = []

    def shrinking(fd, view, offset, path):
        if not cut and threading.current_thread().name.startswith("scan-read") and str(path) == str(target):
            cut.append(True)
            os.truncate(target, 20 * KIB)
        return real(fd, view, offset, path)

    monkeypatch.setattr(scan_mod, "read_at", shrinking)
    small = dict(buffer_bytes=32 * KIB, buffers=3, inline_bytes=4 * KIB)
    result = Scanner(readers=2, **small).full_scan(meta, built.save)
    monkeypatch.undo()
    assert cut
    after = Scanner(readers=0, **small).full_scan(meta, built.save)
    assert summary(result) == summary(after)
    shrunk = next(f for f in result.files if f.entry.path == f"{NAME}/{UNICODE}")
    assert shrunk.status == "size_mismatch" and shrunk.stat.size == 20 * KIB
