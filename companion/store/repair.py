"""The store side of heal: find the damaged segments of a payload, write back only those.

`write_segments` is `Store.heal`: it goes through the one heal writer (companion/drift/heal.py),
which verifies every chunk against its id and the torrent before any byte is written.
`find_damaged` + `heal_in_place` compare a payload with a snapshot's own digests and heal what
differs. The drift response (drift/respond.py) wraps the same writer with the quarantine and
qBittorrent's steps; `seedward restore` goes through it.
"""

import os
import time
from typing import TYPE_CHECKING
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..catalog import snapshots as records
from ..errors import NotFound
from ..piece_plan import file_segments
from ..quickscan import quick_scan
from ..scan import MISSING, OK, SIZE_MISMATCH, Scanner, resolve_payload_path
from .results import HealResult

if TYPE_CHECKING:
    from .store import Store



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
    """Write back only the given (file_index, piece) segments from the snapshot, through the one
    heal writer (companion/drift/heal.py): every chunk is read, checked against its id and the
    pieces against the torrent's own hashes before anything is written (else StoreCorrupt /
    HealError, the payload untouched); then in place (pwrite, fsync), a file longer than the
    torrent says cut to size, a missing file made whole through a staged file. No quarantine
    here: the callers (`restore`'s store path, a job putting its originals back) keep what they
    replace themselves."""
    from ..drift.classify import DAMAGED, MISSING, Drift
    from ..drift.heal import FileDamage, stage, write_staged
    from ..locate import with_paths

    began = time.monotonic()
    snap = store.get(snapshot_id)
    save_path = Path(save_path)
    chunks = store.chunk_map(snap.id)
    rows = {r["file_index"]: r for r in records.snapshot_files(store.catalog, snap.id)}
    wanted = sorted(set((int(f), int(p)) for f, p in bad_segments))
    for key in wanted:
        if key not in chunks:
            raise NotFound(f"snapshot {snap.id[:12]} has no segment for file {key[0]} piece {key[1]}")
    meta = with_paths(store.torrent_meta(snap), {fi: row["path"] for fi, row in rows.items()})
    entries = {e.index: e for e in meta.real_files}
    by_file: dict[int, list] = {}
    for fi, piece in wanted:
        by_file.setdefault(fi, []).append(piece)
    damages = []
    for fi, pieces in by_file.items():
        entry = entries[fi]
        path = resolve_payload_path(save_path, entry)
        segs = tuple((p, chunks[(fi, p)][0], chunks[(fi, p)][1]) for p in pieces)
        kind = DAMAGED if os.path.lexists(path) else MISSING  # a missing file is made whole
        damages.append(FileDamage(entry, path, Drift(kind, segs)))
    ids = {key: value[2] for key, value in chunks.items()}
    staged = stage(meta, save_path, damages, ids, store.read_chunk, store.backend.staging())
    written = write_staged(meta, damages, staged)
    return HealResult(snap.id, wanted, written.bytes_written, [d.entry.path for d in damages],
                      time.monotonic() - began)
