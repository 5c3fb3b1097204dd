"""First snapshots of verified, unchanged files without a second hash pass (borg's files cache).

The catalog's full scan verified each file against the torrent and kept its chunk ids (the
segments' SHA-256 merkle roots), its stat with ctime, and when the read began. A file whose
device, inode, size, mtime and ctime are still those is the file that was verified: its chunks go
into packs under those ids by clone or kernel copy, unhashed. ctime cannot be set from user
space, so any write since the scan moves it, unless the file had changed within one timestamp
tick before the scan's stat: such a file is "racily clean" (git's term) and is read and hashed
again. The margin is a clock tick, with room to spare, on filesystems with nanosecond timestamps
and 2 s where timestamps are whole seconds or coarser (ext3, FAT, some network filesystems).
Chunks are verified against their ids whenever they are read back (restore, heal, drill,
`store check`), so a chunk is never trusted twice.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..piece_plan import file_segments
from ..scan import OK, resolve_payload_path

# Filesystems whose stat this kernel keeps itself. On network and FUSE filesystems another host or
# a daemon may change a file while a cached stat still shows the old one: there, files are hashed.
LOCAL_FILESYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "bcachefs", "jfs", "reiserfs",
                     "tmpfs", "overlay", "nilfs2"}
RACY_NS = 2_000_000_000  # timestamps in whole seconds (or coarser)
RACY_FINE_NS = 100_000_000  # nanosecond timestamps: the kernel's timestamp clock ticks every <= 10 ms


def racy_margin(ctime_ns: int) -> int:
    """How long before the scan's stat a change makes the file racily clean."""
    return RACY_NS if ctime_ns % 1_000_000 == 0 else RACY_FINE_NS


@dataclass
class Trusted:
    entry: object  # FileEntry
    path: Path
    sha256: str
    segments: list  # (piece, offset, length, chunk_id, xxh3), in file order


def identity(path: Path) -> tuple | None:
    """What a write, rename-over or truncate changes: (device, inode, size, mtime, ctime)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def filesystem_type(path: Path, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the filesystem holding `path` (by its device number, else by the longest
    mount point above it), from the kernel's mount table; None when unknown."""
    try:
        dev = os.stat(path).st_dev
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    by_dev, best = None, (-1, None)
    resolved = str(Path(path).resolve())
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail:
            continue
        major, _, minor = fields[2].partition(":")
        if (int(major), int(minor)) == (os.major(dev), os.minor(dev)):
            by_dev = tail[0]
        point = fields[4].replace("\\040", " ")
        if (resolved == point or resolved.startswith(point.rstrip("/") + "/")) and len(point) > best[0]:
            best = (len(point), tail[0])
    return by_dev or best[1]


def trusted_files(catalog, meta, save_path: Path, entries, identities: dict) -> dict[int, Trusted]:
    """The entries whose current identity (from `identities`, taken before any copy) is the one
    the catalog verified. Others, every file of an uncataloged torrent and every file on a network
    or FUSE filesystem must be scanned."""
    if catalog.get_torrent(meta.id) is None or filesystem_type(save_path) not in LOCAL_FILESYSTEMS:
        return {}
    rows = {r["file_index"]: r for r in catalog.get_files(meta.id)}
    segments: dict[int, list] = {}
    for s in catalog.get_segments(meta.id):
        segments.setdefault(s["file_index"], []).append(s)
    out = {}
    for entry in entries:
        row = rows.get(entry.index)
        if row is None or row["status"] != OK or not row["sha256"] or row["size"] != entry.size:
            continue
        keys = row.keys()
        ctime, seen = (row["ctime_ns"], row["verified_ns"]) if "ctime_ns" in keys else (None, None)
        if ctime is None or seen is None or max(ctime, row["mtime_ns"]) > seen - racy_margin(ctime):
            continue
        if identities.get(entry.index) != (row["device"], row["inode"], entry.size, row["mtime_ns"], ctime):
            continue
        planned = file_segments(meta, entry)
        known = segments.get(entry.index, [])
        if len(known) != len(planned) or any(
            not k["chunk_id"] or (k["piece"], k["offset"], k["length"]) != (p.piece, p.offset, p.length)
            for k, p in zip(known, planned)
        ):
            continue
        out[entry.index] = Trusted(entry, resolve_payload_path(save_path, entry), row["sha256"],
                                   [(k["piece"], k["offset"], k["length"], k["chunk_id"], k["xxh3"]) for k in known])
    return out
