"""The store side of heal: find the damaged segments of a payload, write back only those.

`write_segments` is the writer (`Store.heal`): each chunk read back and verified against its id
before any byte of its batch is written, in place with pwrite and fsync. `find_damaged` +
`heal_in_place` are `seedward restore` without --to. The drift response wraps the writer with
quarantine (stop in qBittorrent, keep the drifted bytes) and the recheck/resume steps.
"""

import os
import time
from typing import TYPE_CHECKING
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..catalog import snapshots as records
from ..errors import NotFound
from ..piece_plan import file_segments
from ..scan import MISSING, OK, SIZE_MISMATCH, Scanner, quick_scan, resolve_payload_path
from ..torrent import FileEntry
from .pack import pwrite_all
from .results import HealResult

if TYPE_CHECKING:
    from .store import Store

HEAL_BATCH_BYTES = 256 * 1024 * 1024  # chunks verified before any of the batch is written


@dataclass
class Damage:
    snapshot_id: str
    segments: list[tuple[int, int]] = field(default_factory=list)  # (file_index, piece)
    files: dict[str, str] = field(default_factory=dict)  # path -> ok | damaged | missing | size_mismatch
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.segments

    def to_json(self) -> dict:
        return asdict(self)


def find_damaged(store: "Store", snapshot_id: str, save_path, files=None, full: bool = False) -> Damage:
    """Compare the payload with the snapshot: quick (xxh3 per segment vs the snapshot's own
    digests) or full (the torrent's hashes). files: paths or file indices to look at."""
    snap = store.get(snapshot_id)
    meta = store.torrent_meta(snap)
    rows = store.select_files(snap.id, files)
    wanted = {r["file_index"] for r in rows}
    damage = Damage(snap.id)
    entries = {e.index: e for e in meta.real_files}
    if full:
        result = Scanner().full_scan(meta, Path(save_path), only_files=wanted)
        damage.bytes_read = result.bytes_read
        bad = set(result.bad_pieces)
        for fs in result.files:
            damage.files[fs.entry.path] = fs.status
            if fs.status == OK:
                continue
            segs = file_segments(meta, fs.entry)
            hit = [s.piece for s in segs if s.piece in bad or fs.status == MISSING]
            damage.segments += [(fs.entry.index, p) for p in (hit or [segs[-1].piece] if segs else [])]
    else:
        baseline: dict[int, dict[int, str]] = {}
        for c in records.snapshot_chunks(store.catalog, snap.id):
            if c["file_index"] in wanted:
                baseline.setdefault(c["file_index"], {})[c["piece"]] = c["xxh3"]
        result = quick_scan(meta, Path(save_path), baseline, files=wanted)
        damage.bytes_read = result.bytes_read
        for qf in result.files:
            damage.files[entries[qf.file_index].path] = qf.status
            pieces = [p for p, _off, _len in qf.bad_segments]
            if qf.status == SIZE_MISMATCH and not pieces:
                segs = file_segments(meta, entries[qf.file_index])
                pieces = [segs[-1].piece] if segs else []  # only longer: healing the tail cuts it to size
            damage.segments += [(qf.file_index, p) for p in pieces]
    damage.segments.sort()
    return damage


def heal_in_place(store: "Store", snapshot_id: str, save_path, files=None, full: bool = False,
                  dry_run: bool = False) -> tuple[Damage, HealResult | None]:
    """Find the damaged segments and write back only those from the snapshot (verified chunks)."""
    damage = find_damaged(store, snapshot_id, save_path, files=files, full=full)
    if dry_run or damage.ok:
        return damage, None
    return damage, store.heal(damage.snapshot_id, save_path, damage.segments)


def write_segments(store, snapshot_id: str, save_path, bad_segments) -> HealResult:
    """Write back only the given (file_index, piece) segments from the snapshot, in place
    (pwrite, fsync). Every chunk is verified before it is written; a missing file is
    created and a file longer than the torrent says is cut to size."""
    began = time.monotonic()
    snap = store.get(snapshot_id)
    save_path = Path(save_path)
    chunks = store.chunk_map(snap.id)
    rows = {r["file_index"]: r for r in records.snapshot_files(store.catalog, snap.id)}
    wanted = sorted(set((int(f), int(p)) for f, p in bad_segments))
    for key in wanted:
        if key not in chunks:
            raise NotFound(f"snapshot {snap.id[:12]} has no segment for file {key[0]} piece {key[1]}")
    by_file: dict[int, list] = {}
    for fi, piece in wanted:
        by_file.setdefault(fi, []).append(piece)
    total, names = 0, []
    for fi, pieces in by_file.items():
        row = rows[fi]
        entry = FileEntry(fi, row["path"], row["size"], 0, False, None)
        path = resolve_payload_path(save_path, entry)
        total += _write_file(store, path, row, [(p, *chunks[(fi, p)]) for p in pieces])
        names.append(row["path"])
    return HealResult(snap.id, wanted, total, names, time.monotonic() - began)


def _write_file(store, path: Path, row, segs) -> int:
    batches, cur, size = [], [], 0
    for seg in segs:
        if cur and size + seg[2] > HEAL_BATCH_BYTES:
            batches.append(cur)
            cur, size = [], 0
        cur.append(seg)
        size += seg[2]
    if cur:
        batches.append(cur)
    written = 0
    fd = None
    try:
        for batch in batches:
            verified = [(offset, store.read_chunk(cid)) for _p, offset, _l, cid in batch]
            if fd is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            for offset, data in verified:
                pwrite_all(fd, data, offset)
                written += len(data)
        if fd is not None:
            if os.fstat(fd).st_size > row["size"]:
                os.ftruncate(fd, row["size"])
            os.fsync(fd)
    finally:
        if fd is not None:
            os.close(fd)
    return written
