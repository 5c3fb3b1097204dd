"""Heal: put a drifted payload back, piece by piece, from the snapshot store.

The steps a heal takes, each a function here: keep the drifted bytes in the quarantine folder
(nothing a person or an agent wrote is lost), fetch the damaged segments' chunks from the store and
check them against the torrent's own hashes before anything is written, write only those byte
ranges (a whole file, through a temp file and a rename, when it was replaced, truncated or
missing), then verify the written pieces against the torrent again. qBittorrent's part (stop,
recheck, resume) lives in companion.respond.
"""

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .drift.classify import EXTENDED, MISSING, Drift
from .errors import Error, StoreCorrupt
from .manifests import atomic_write
from .merkle import merkle_root
from .piece_plan import Segment, file_segments, piece_plan
from .scan import resolve_payload_path
from .torrent import BLOCK, FileEntry, TorrentMeta

log = logging.getLogger(__name__)

COPY_BYTES = 4 * 1024 * 1024


class HealError(Error):
    """heal of {}: {}"""


@dataclass
class FileDamage:
    entry: FileEntry
    path: Path
    drift: Drift

    def segments(self, meta: TorrentMeta) -> list[Segment]:
        """The segments to write back: all of them for whole-file kinds, else the bad ones."""
        segs = file_segments(meta, self.entry)
        if self.drift.whole_file:
            return segs
        bad = set(self.drift.pieces)
        return [s for s in segs if s.piece in bad]


@dataclass
class Quarantined:
    folder: Path
    files: list[dict] = field(default_factory=list)  # what was kept for each file


def quarantine_folder(root: Path, torrent_id: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = Path(root) / f"{stamp}-{torrent_id[:12]}"
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    return folder


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_range(src_fd: int, dst: Path, offset: int, length: int) -> int:
    """Copy [offset, offset+length) of src into a new file; returns bytes copied (less at EOF)."""
    done = 0
    with open(dst, "wb") as out:
        while done < length:
            data = os.pread(src_fd, min(COPY_BYTES, length - done), offset + done)
            if not data:
                break
            out.write(data)
            done += len(data)
        out.flush()
        os.fsync(out.fileno())
    return done


def _move_whole(src: Path, dst: Path) -> None:
    """Move a file aside: a rename on the same filesystem, else copy, fsync, unlink."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: the quarantine is on another filesystem
            raise
        shutil.copy2(src, dst)
        with open(dst, "rb") as fh:
            os.fsync(fh.fileno())
        os.unlink(src)
    _fsync_dir(dst.parent)


def quarantine(meta: TorrentMeta, damages: list[FileDamage], folder: Path, *, keep_whole: bool = False) -> Quarantined:
    """Keep the drifted bytes in `folder` before anything is written over them.

    Replaced or truncated files move there whole. For pieces changed in place (and an extended
    file) only the changed segments' current bytes, and the bytes past the torrent's size, are
    copied: every other byte of the file still equals the snapshot, so nothing written is lost.
    keep_whole copies the whole drifted file instead and leaves it in place (a heal by the swarm).
    `drift.json` in the folder lists what is where.
    """
    kept = Quarantined(folder)
    for dmg in damages:
        rel = dmg.entry.path
        record = {"path": rel, "kind": dmg.drift.kind, "pieces": dmg.drift.pieces, "hardlinked": dmg.drift.hardlinked,
                  "detail": dmg.drift.detail}
        try:
            if dmg.drift.kind == MISSING or not dmg.path.exists():
                record["kept"] = "nothing (the file was gone)"
            elif keep_whole:
                dst = folder / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(dmg.path, dst)
                with open(dst, "rb") as fh:
                    os.fsync(fh.fileno())
                record["kept"] = "whole file (copy)"
                record["file"] = rel
            elif dmg.drift.whole_file:
                _move_whole(dmg.path, folder / rel)
                record["kept"] = "whole file (moved)"
                record["file"] = rel
            else:
                record["ranges"] = _keep_ranges(meta, dmg, folder)
                record["kept"] = "changed ranges; every other byte equals the snapshot"
        except OSError as exc:
            raise HealError(dmg.path, f"cannot keep the drifted bytes in {folder}: {exc.strerror or exc}") from exc
        kept.files.append(record)
    atomic_write(folder / "drift.json", (json.dumps({"torrent": meta.id, "name": meta.name, "files": kept.files},
                                                    indent=2) + "\n").encode())
    return kept


def _keep_ranges(meta: TorrentMeta, dmg: FileDamage, folder: Path) -> list[dict]:
    out_dir = folder / (dmg.entry.path + ".drift")
    out_dir.mkdir(parents=True, exist_ok=True)
    ranges = []
    fd = os.open(dmg.path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        spans = [(s.offset, s.length) for s in dmg.segments(meta)]
        if dmg.drift.kind == EXTENDED and size > dmg.entry.size:
            spans.append((dmg.entry.size, size - dmg.entry.size))
        for offset, length in spans:
            name = f"{offset:016d}-{length}.bin"
            got = _copy_range(fd, out_dir / name, offset, length)
            ranges.append({"offset": offset, "length": got, "file": f"{dmg.entry.path}.drift/{name}"})
    finally:
        os.close(fd)
    _fsync_dir(out_dir)
    return ranges


def _segment_root(meta: TorrentMeta, entry: FileEntry, seg: Segment, data) -> bytes:
    leaves = [hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]
    if len(file_segments(meta, entry)) == 1:
        return merkle_root(leaves)
    return merkle_root(leaves, max(1, meta.piece_length // BLOCK))


def _read_part(save_path: Path, entry: FileEntry, offset: int, length: int) -> bytes | None:
    try:
        with open(resolve_payload_path(save_path, entry), "rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
    except FileNotFoundError:
        return None
    return data if len(data) == length else None


def bad_pieces(meta: TorrentMeta, save_path: Path, pieces, overrides: dict | None = None) -> list[int]:
    """The pieces (of `pieces`) that fail the torrent's own hashes: v1 SHA-1 over the whole piece
    and v2 merkle roots per file. overrides: {(file_index, piece): bytes} stand in for the disk."""
    overrides = overrides or {}
    bad = []
    for piece in sorted(set(pieces)):
        parts = []
        ok = True
        for entry, offset, length in piece_plan(meta, piece):
            if entry.pad:
                parts.append((entry, bytes(length)))
                continue
            data = overrides.get((entry.index, piece))
            if data is None:
                data = _read_part(save_path, entry, offset, length)
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
    seg = next(s for s in file_segments(meta, entry) if s.piece == piece)
    root = _segment_root(meta, entry, seg, data)
    layer = meta.v2_piece_hashes(entry)
    if layer is None:
        return root == entry.root
    return root == layer[piece - meta.file_pieces(entry).start]


@dataclass
class WriteResult:
    pieces: list[int]
    bytes_written: int
    files: list[str]


def fetch_chunks(meta: TorrentMeta, save_path: Path, damages: list[FileDamage], chunk_ids: dict, read_chunk) -> dict:
    """Read every segment to write from the store and check it against the torrent before any
    write. Raises StoreCorrupt (from read_chunk, naming the chunk) or HealError."""
    fetched: dict[tuple[int, int], bytes] = {}
    owner: dict[tuple[int, int], str] = {}
    for dmg in damages:
        for seg in dmg.segments(meta):
            key = (dmg.entry.index, seg.piece)
            cid = chunk_ids.get(key)
            if not cid:
                raise HealError(meta.name, f"the snapshot has no chunk for {dmg.entry.path} piece {seg.piece}")
            data = read_chunk(cid)
            if len(data) != seg.length or _segment_root(meta, dmg.entry, seg, data).hex() != cid:
                raise StoreCorrupt("store", f"chunk {cid} does not match its id; nothing written")
            fetched[key] = data
            owner[key] = cid
    touched = sorted({p for _, p in fetched})
    failing = bad_pieces(meta, save_path, touched, overrides=fetched)
    if failing:
        cids = sorted({owner[k] for k in fetched if k[1] in failing})
        raise HealError(meta.name, f"chunks {', '.join(c[:16] for c in cids[:4])} do not make pieces "
                        f"{failing[:10]} of the torrent; nothing written")
    return fetched


def write_segments(meta: TorrentMeta, save_path: Path, damages: list[FileDamage], fetched: dict) -> WriteResult:
    """Write the fetched segments back. Whole files go through a temp file, fsync and a rename,
    so a crash never leaves half a file at the payload's path."""
    written = 0
    files = []
    for dmg in damages:
        segs = dmg.segments(meta)
        path = dmg.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if dmg.drift.hardlinked and not dmg.drift.whole_file:
            written += _detach_and_write(dmg, segs, fetched)
        elif dmg.drift.whole_file:
            tmp = path.with_name(f".{path.name}.seedward-heal")
            with open(tmp, "wb") as out:
                for seg in segs:
                    out.write(fetched[(dmg.entry.index, seg.piece)])
                    written += seg.length
                out.truncate(dmg.entry.size)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        else:
            fd = os.open(path, os.O_WRONLY)
            try:
                if os.fstat(fd).st_size != dmg.entry.size:
                    os.ftruncate(fd, dmg.entry.size)  # an extended file: its tail is in quarantine
                for seg in segs:
                    data = fetched[(dmg.entry.index, seg.piece)]
                    done = 0
                    while done < len(data):
                        done += os.pwrite(fd, memoryview(data)[done:], seg.offset + done)
                    written += seg.length
                os.fsync(fd)
            finally:
                os.close(fd)
        files.append(dmg.entry.path)
    pieces = sorted({p for _, p in fetched})
    return WriteResult(pieces, written, files)


def _detach_and_write(dmg: FileDamage, segs: list[Segment], fetched: dict) -> int:
    """A hard-linked file edited through another link: give the payload its own inode (a copy with
    the snapshot's segments written in), so the other link keeps the edit and the seed is whole."""
    path = dmg.path
    tmp = path.with_name(f".{path.name}.seedward-heal")
    shutil.copyfile(path, tmp)  # copy_file_range: a reflink or in-kernel copy where possible
    written = 0
    with open(tmp, "r+b") as out:
        out.truncate(dmg.entry.size)
        for seg in segs:
            out.seek(seg.offset)
            out.write(fetched[(dmg.entry.index, seg.piece)])
            written += seg.length
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return written


def heal_files(meta: TorrentMeta, save_path: Path, damages: list[FileDamage], chunk_ids: dict, read_chunk,
               quarantine_root: Path) -> tuple[Quarantined, WriteResult]:
    """Fetch and check every chunk first, keep the drifted bytes, write, then verify the written
    pieces against the torrent. Raises HealError / StoreCorrupt before any write when the store
    cannot supply good data."""
    fetched = fetch_chunks(meta, save_path, damages, chunk_ids, read_chunk)
    kept = quarantine(meta, damages, quarantine_folder(quarantine_root, meta.id))
    result = write_segments(meta, save_path, damages, fetched)
    failing = bad_pieces(meta, save_path, result.pieces)
    if failing:
        raise HealError(meta.name, f"pieces {failing[:10]} still fail the torrent's hashes after writing")
    return kept, result
