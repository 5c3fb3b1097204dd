"""Heal: put a drifted payload back, piece by piece, from the snapshot store.

The steps a heal takes: fetch the damaged segments' chunks from the store and check them against
the torrent's own hashes before anything is written (`stage`), keep the drifted bytes in the
quarantine folder (drift/quarantine.py), write only those byte ranges (a whole file, through a
staged file renamed over the path, when it was replaced, truncated, missing or hard-linked:
`write_staged`), then verify the written pieces against the torrent again. This is the one heal
writer: the protection ladder's sources (companion/ladder) feed the same stage and write steps.
qBittorrent's part (stop, recheck, resume) is not here: drift/respond.py decides it and
drift/qbtsteps.py carries it out, so a heal never waits for qBittorrent.

A file replaced by a symbolic link is never read through: the link is kept in the quarantine as
a link and the torrent's bytes are written in its place. A BEP 47 symlink entry is made again as
the torrent's link, never as bytes.
"""

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StoreCorrupt
from ..merkle import merkle_root
from ..piece_plan import Segment, piece_plan
from ..scan import FileStat, resolve_payload_path
from ..torrent import BLOCK, FileEntry, TorrentMeta
from .damage import FileDamage, HealError
from .quarantine import Quarantined, _fsync_dir, break_link, is_link, quarantine, quarantine_folder

__all__ = ["FileDamage", "HealError", "Quarantined", "Spill", "Staged", "WriteResult", "bad_pieces", "break_link",
           "heal_files", "quarantine", "quarantine_folder", "stage", "write_staged"]

log = logging.getLogger(__name__)


def _segment_root(meta: TorrentMeta, entry: FileEntry, data) -> bytes:
    """The SHA-256 merkle root of a segment's 16 KiB blocks (its chunk id; its v2 piece hash)."""
    leaves = [hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    if len(meta.file_pieces(entry)) == 1:
        return merkle_root(leaves)
    return merkle_root(leaves, max(1, meta.piece_length // BLOCK))


@dataclass(frozen=True)
class Spill:
    """Fetched chunk bytes parked in a scratch file (large damage is not held in memory)."""

    path: Path
    offset: int
    length: int

    def read(self) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.length)


def _bytes(value) -> bytes:
    return value.read() if isinstance(value, Spill) else value


def _read_file(path: Path, offset: int, length: int) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
    except FileNotFoundError:
        return None
    return data if len(data) == length else None


def bad_pieces(meta: TorrentMeta, save_path: Path, pieces, overrides: dict | None = None,
               paths: dict | None = None) -> list[int]:
    """The pieces (of `pieces`) that fail the torrent's own hashes: v1 SHA-1 over the whole piece
    and v2 merkle roots per file. overrides: {(file_index, piece): bytes | Spill} and paths:
    {file_index: staged file} stand in for the payload on disk."""
    overrides = overrides or {}
    paths = paths or {}
    bad = []
    for piece in sorted(set(pieces)):
        parts = []
        ok = True
        for entry, offset, length in piece_plan(meta, piece):
            if entry.pad:
                parts.append((entry, bytes(length)))
                continue
            data = overrides.get((entry.index, piece))
            if data is not None:
                data = _bytes(data)
            else:
                where = paths.get(entry.index) or resolve_payload_path(save_path, entry)
                data = _read_file(where, offset, length)
            if data is None or len(data) != length:
                ok = False
                break
            parts.append((entry, data))
        if ok and meta.has_v1:
            h = hashlib.sha1()
            for _, data in parts:
                h.update(data)
            ok = h.digest() == meta.v1_hashes[piece]
        if ok and meta.has_v2:
            for entry, data in parts:
                if entry.pad:
                    continue
                ok = ok and _v2_ok(meta, entry, piece, data)
        if not ok:
            bad.append(piece)
    return bad


def _v2_ok(meta: TorrentMeta, entry: FileEntry, piece: int, data) -> bool:
    """The segment against the torrent's v2 hash: its piece layer entry, or the pieces root of a
    file within one piece. (Constant work per piece: the layer is sliced, not listed.)"""
    root = _segment_root(meta, entry, data)
    layer = meta.piece_layers.get(entry.root) if entry.root else None
    if layer is None:
        return root == entry.root
    at = (piece - meta.file_pieces(entry).start) * 32
    return root == layer[at : at + 32]


@dataclass
class WriteResult:
    pieces: list[int]
    bytes_written: int
    files: list[str]
    stats: dict = field(default_factory=dict)  # file_index -> FileStat of the inode the heal wrote


IN_MEMORY_BYTES = 64 * 1024 * 1024  # damage above this is spilled to a scratch file while it is checked


def _chunk(meta: TorrentMeta, dmg: FileDamage, seg: Segment, chunk_ids: dict, read_chunk) -> tuple[str, bytes]:
    cid = chunk_ids.get((dmg.entry.index, seg.piece))
    if not cid:
        raise HealError(meta.name, f"the snapshot has no chunk for {dmg.entry.path} piece {seg.piece}")
    data = read_chunk(cid)
    if len(data) != seg.length or _segment_root(meta, dmg.entry, data).hex() != cid:
        raise StoreCorrupt("store", f"chunk {cid} does not match its id; nothing written")
    return cid, data


@dataclass
class Staged:
    """Everything to write, fetched from the store and checked; nothing written to the payload yet."""

    ranges: dict = field(default_factory=dict)  # (file_index, piece) -> bytes | Spill
    files: dict = field(default_factory=dict)  # file_index -> staged whole file (renamed over the payload)
    owners: dict = field(default_factory=dict)  # (file_index, piece) -> chunk id
    scratch: list = field(default_factory=list)
    links: dict = field(default_factory=dict)  # file_index -> target: a BEP 47 symlink entry made again

    def discard(self) -> None:
        for path in list(self.files.values()) + self.scratch:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    @property
    def pieces(self) -> list[int]:
        return sorted({p for _, p in self.owners})


def _stage_file(meta: TorrentMeta, dmg: FileDamage, chunk_ids: dict, read_chunk, staged: Staged) -> None:
    """A whole file from the store, or (hard-linked) a copy of the current file with the damaged
    segments written in, built beside the payload file."""
    tmp = dmg.path.with_name(f".{dmg.path.name}.seedward-heal")
    staged.files[dmg.entry.index] = tmp
    dmg.path.parent.mkdir(parents=True, exist_ok=True)
    if dmg.drift.whole_file:
        open(tmp, "wb").close()
    else:
        shutil.copyfile(dmg.path, tmp)  # copy_file_range: a reflink or in-kernel copy where possible
    with open(tmp, "r+b") as out:
        out.truncate(dmg.entry.size)
        for seg in dmg.segments(meta):
            cid, data = _chunk(meta, dmg, seg, chunk_ids, read_chunk)
            out.seek(seg.offset)
            out.write(data)
            staged.owners[(dmg.entry.index, seg.piece)] = cid
        out.flush()
        os.fsync(out.fileno())
    if os.path.lexists(dmg.path) and not is_link(dmg.path):
        os.chmod(tmp, os.stat(dmg.path).st_mode & 0o7777)


def stage(meta: TorrentMeta, save_path: Path, damages: list[FileDamage], chunk_ids: dict, read_chunk,
          scratch_dir: Path) -> Staged:
    """Read every segment to write from the store and check it against its id and against the
    torrent's own hashes, before any write to the payload. Whole files (replaced, truncated,
    missing) and hard-linked files are built as staged files beside the payload; other damage is
    held in memory, or spilled to a scratch file when large. Raises StoreCorrupt (naming the
    chunk) or HealError, leaving the payload untouched."""
    staged = Staged()
    spill_fh = None
    try:
        in_place = [d for d in damages if not (d.drift.whole_file or d.drift.hardlinked)]
        if sum(s.length for d in in_place for s in d.segments(meta)) > IN_MEMORY_BYTES:
            Path(scratch_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            spill = Path(scratch_dir) / f".{meta.id[:12]}.seedward-spill"
            staged.scratch.append(spill)
            spill_fh = open(spill, "wb")
        for dmg in damages:
            if dmg.entry.symlink is not None:
                staged.links[dmg.entry.index] = dmg.entry.link_target  # a link, never bytes
                continue
            if dmg.drift.whole_file or dmg.drift.hardlinked:
                _stage_file(meta, dmg, chunk_ids, read_chunk, staged)
                continue
            for seg in dmg.segments(meta):
                cid, data = _chunk(meta, dmg, seg, chunk_ids, read_chunk)
                key = (dmg.entry.index, seg.piece)
                staged.owners[key] = cid
                if spill_fh is None:
                    staged.ranges[key] = data
                else:
                    staged.ranges[key] = Spill(Path(spill_fh.name), spill_fh.tell(), len(data))
                    spill_fh.write(data)
        if spill_fh is not None:
            spill_fh.close()
        failing = bad_pieces(meta, save_path, staged.pieces, overrides=staged.ranges, paths=staged.files)
        if failing:
            cids = sorted({c for k, c in staged.owners.items() if k[1] in failing})
            raise HealError(meta.name, f"chunks {', '.join(c[:16] for c in cids[:4])} do not make pieces "
                            f"{failing[:10]} of the torrent; nothing written")
    except BaseException:
        if spill_fh is not None:
            spill_fh.close()
        staged.discard()
        raise
    return staged


def write_staged(meta: TorrentMeta, damages: list[FileDamage], staged: Staged) -> WriteResult:
    """Write back: byte ranges in place (pwrite, fsync; an extended file is cut to size first), staged
    whole files renamed over the payload path (so a crash never leaves half a file there)."""
    written = 0
    stats = {}
    for dmg in damages:
        path = dmg.path
        if dmg.entry.index in staged.links:
            tmp = path.with_name(f".{path.name}.seedward-link")
            path.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(staged.links[dmg.entry.index], tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            stats[dmg.entry.index] = FileStat.of(os.lstat(path))
            continue
        tmp = staged.files.get(dmg.entry.index)
        if tmp is not None:
            stats[dmg.entry.index] = FileStat.of(os.stat(tmp))  # a rename keeps inode, size and mtime
            os.replace(tmp, path)  # over a symbolic link too: the link itself is replaced
            _fsync_dir(path.parent)
            written += sum(s.length for s in dmg.segments(meta))
            continue
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size != dmg.entry.size:
                os.ftruncate(fd, dmg.entry.size)  # an extended file: its tail is in quarantine
            for seg in dmg.segments(meta):
                data = memoryview(_bytes(staged.ranges[(dmg.entry.index, seg.piece)]))
                done = 0
                while done < len(data):
                    done += os.pwrite(fd, data[done:], seg.offset + done)
                written += seg.length
            os.fsync(fd)
            stats[dmg.entry.index] = FileStat.of(os.fstat(fd))
        finally:
            os.close(fd)
    staged.discard()
    return WriteResult(staged.pieces, written, [d.entry.path for d in damages], stats)


def heal_files(meta: TorrentMeta, save_path: Path, damages: list[FileDamage], chunk_ids: dict, read_chunk,
               quarantine_root: Path, snapshot_id: str | None = None) -> tuple[Quarantined, WriteResult]:
    """Stage and check every chunk first, keep the drifted bytes, write, then verify the written
    pieces against the torrent. Raises HealError / StoreCorrupt before any write when the store
    cannot supply good data."""
    staged = stage(meta, save_path, damages, chunk_ids, read_chunk, Path(quarantine_root))
    try:
        kept = quarantine(meta, damages, quarantine_folder(quarantine_root, meta.id), snapshot_id=snapshot_id)
    except BaseException:
        staged.discard()
        raise
    result = write_staged(meta, damages, staged)
    failing = bad_pieces(meta, save_path, result.pieces)
    if failing:
        raise HealError(meta.name, f"pieces {failing[:10]} still fail the torrent's hashes after writing")
    return kept, result
