"""A seeded, bounded randomized differential test: seedward's full scan against libtorrent's own
recheck over random layouts, creators and damage.

Each case: random files (empty, 1 byte, around piece boundaries, up to a few pieces, nested and
non-ASCII names), a torrent from libtorrent (v1/v2/hybrid) or an independent creator (v2 ones at
times without piece layers), then 0-3 random damages. Checked per case: the bad pieces equal libtorrent's; no changed file is `ok`;
no unchanged file is `damaged`/`missing`/`size_mismatch`; `suspect` only in a bad piece; with
the intact scan's xxh3 as baseline every status is exact; the verdicts do not depend on the
order of the files.
"""

import copy
import os
import random

import libtorrent as lt
import pytest

from companion import blame, ltsession
from companion import scan as scan_mod
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.scan_cases import KIB, build

SEED = 1515
CASES = 300
NAMES = ["a.flac", "b.bin", "Ünï – 東京.txt", "cover.jpg", "x", "CD1/a.flac", "CD1/deep/c.bin", "CD2/ä.wav"]
CREATORS = ["v1", "v2", "hybrid"] * 5 + ["mktorrent", "transmission", "torf", "torrentfile-v1",
                                         "torrentfile-v2", "torrentfile-hybrid"]


@pytest.fixture(scope="module")
def session():
    ses = ltsession.isolated_session()
    yield ses
    del ses


def random_layout(rnd: random.Random, piece: int) -> dict[str, int]:
    names = rnd.sample(NAMES, rnd.randint(2, 6))  # one file in a folder: some creators drop the folder
    sizes = [0, 1, piece - 1, piece, piece + 1, 2 * piece, rnd.randint(2, 3 * piece), rnd.randint(2, piece // 2)]
    layout = {f"Top/{n}": rnd.choice(sizes) for n in names}
    if all(size == 0 for size in layout.values()):
        layout[next(iter(layout))] = piece + 7
    return layout


def damage(rnd: random.Random, built, layout: dict[str, int]) -> set[str]:
    """0-3 random changes on disk; returns the paths whose bytes (or size, or presence) changed."""
    before = {p: (built.save / p).read_bytes() for p in built.files}
    changed = set()
    for _ in range(rnd.choice([0, 1, 1, 2, 3])):
        present = [p for p in built.files if (built.save / p).exists()]
        if not present:
            break
        path = rnd.choice(present)
        on_disk = built.save / path
        size = on_disk.stat().st_size
        op = rnd.choice(["flip", "flip", "truncate", "extend", "delete", "swap", "zero"])
        if op == "flip" and size:
            at = rnd.randrange(size)
            with open(on_disk, "r+b") as fh:
                fh.seek(at)
                byte = fh.read(1)
                fh.seek(at)
                fh.write(bytes([byte[0] ^ (1 << rnd.randrange(8))]))
            changed.add(path)
        elif op == "truncate" and size:
            os.truncate(on_disk, rnd.randrange(size))
            changed.add(path)
        elif op == "extend":
            with open(on_disk, "ab") as fh:
                fh.write(rnd.randbytes(rnd.randint(1, 100)))
            changed.add(path)
        elif op == "delete":
            on_disk.unlink()
            changed.add(path)
        elif op == "swap" and len(present) > 1:
            other = rnd.choice([p for p in present if p != path])
            a, b = on_disk.read_bytes(), (built.save / other).read_bytes()
            if a != b:
                on_disk.write_bytes(b)
                (built.save / other).write_bytes(a)
                changed.update({path, other})
        elif op == "zero" and size:
            at = rnd.randrange(size)
            n = rnd.randint(1, size - at)
            with open(on_disk, "r+b") as fh:
                fh.seek(at)
                old = fh.read(n)
                fh.seek(at)
                fh.write(bytes(n))
            if old != bytes(n):
                changed.add(path)
    # what truly differs at the end (two swaps may undo each other)
    return {p for p, data in before.items()
            if not (built.save / p).exists() or (built.save / p).read_bytes() != data}


class Spy:
    """Keeps what the verdict was computed from (companion.scan calls blame.judge once per scan)."""

    def __init__(self):
        self.calls = []

    def __call__(self, meta, results, piece_sha1, bpp, baseline=None):
        self.calls.append(([copy.copy(fs) for fs in results], dict(piece_sha1), bpp, baseline))
        return blame.judge(meta, results, piece_sha1, bpp, baseline)

    def rejudge(self, meta, order) -> dict[str, str]:
        """The last scan's verdicts again from the same hashes, with the files in another order."""
        files, piece_sha1, bpp, baseline = self.calls[-1]
        files = [copy.copy(files[i]) for i in order]
        blame.judge(meta, files, dict(piece_sha1), bpp, baseline)
        return {fs.entry.path: fs.status for fs in files}


@pytest.mark.slow
def test_randomized_differential_against_libtorrent(tmp_path, session, monkeypatch):
    spy = Spy()
    monkeypatch.setattr(scan_mod, "judge", spy)
    scanner = Scanner(buffer_bytes=64 * KIB, buffers=3)
    disagreements = []
    for case in range(CASES):
        rnd = random.Random(SEED * 1000 + case)
        piece = rnd.choice([16 * KIB, 32 * KIB, 64 * KIB])
        creator = rnd.choice(CREATORS)
        if creator == "mktorrent" and piece < 32 * KIB:
            piece = 32 * KIB
        layout = random_layout(rnd, piece)
        if creator == "transmission":
            layout = {p: s for p, s in layout.items() if s} or {"Top/x": piece + 1}
        work = tmp_path / str(case)
        built = build(work, layout, piece, creator, seed=case)
        meta = load_torrent(built.torrent)
        if meta.has_v2 and rnd.random() < 0.25:  # piece layers left out: files verify from their pieces root
            doc = lt.bdecode(meta.raw)
            doc.pop(b"piece layers", None)
            built.torrent.write_bytes(lt.bencode(doc))
            meta = load_torrent(built.torrent)
            creator += " without piece layers"
        intact = scanner.full_scan(meta, built.save)
        baseline = {f.entry.index: {s.piece: s.xxh3 for s in f.segments} for f in intact.files}
        changed = damage(rnd, built, layout)
        exact = scanner.full_scan(meta, built.save, baseline=baseline)
        result = scanner.full_scan(meta, built.save)
        truth = {}
        for path, size in built.files.items():
            on_disk = built.save / path
            if not on_disk.exists():
                truth[path] = "missing"
            elif on_disk.stat().st_size != size:
                truth[path] = "size_mismatch"
            else:
                truth[path] = "damaged" if path in changed else "ok"
        # last: libtorrent writes (it creates missing empty files)
        want = sorted(ltsession.recheck(meta.raw, built.save, timeout=60, session=session))
        where = f"case {case} ({creator}, piece {piece}, {layout}, changed {sorted(changed)})"
        if result.bad_pieces != want or exact.bad_pieces != want:
            disagreements.append(f"{where}: seedward {result.bad_pieces}, libtorrent {want}")
            continue
        if built.faults:
            continue  # the creator's own hashes are wrong: the bad pieces agreed, statuses mean little
        bad = set(result.bad_pieces)
        for fs in result.files:
            path, status = fs.entry.path, fs.status
            in_bad = any(s.piece in bad for s in fs.segments)
            assert not (path in changed and status == "ok"), f"{where}: changed {path} is ok"
            assert path in changed or status in ("ok", "suspect"), f"{where}: unchanged {path} is {status}"
            assert status != "suspect" or in_bad, f"{where}: {path} suspect outside bad pieces"
            assert status != "ok" or not in_bad or meta.has_v2, f"{where}: {path} ok in a bad v1 piece"
        for fs in exact.files:
            path = fs.entry.path
            assert fs.status == truth[path], f"{where}: with a baseline {path} is {fs.status}, truly {truth[path]}"
        assert result.ok == (not changed), where
        order = list(range(len(result.files)))
        rnd.shuffle(order)
        assert spy.rejudge(meta, order) == {fs.entry.path: fs.status for fs in result.files}, where
    assert not disagreements, "\n".join(disagreements)
