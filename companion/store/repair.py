"""In-place repair from a snapshot: find the damaged segments of a payload, write back only those.

`find_damaged` + `heal_in_place` are the store side of `seedward restore` without --to; the
drift response wraps them with quarantine (stop in qBittorrent, keep the drifted bytes) and
the recheck/resume steps.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..catalog import snapshots as records
from ..piece_plan import file_segments
from ..scan import MISSING, OK, SIZE_MISMATCH, Scanner, quick_scan
from .store import HealResult, Store


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


def find_damaged(store: Store, snapshot_id: str, save_path, files=None, full: bool = False) -> Damage:
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


def heal_in_place(store: Store, snapshot_id: str, save_path, files=None, full: bool = False,
                  dry_run: bool = False) -> tuple[Damage, HealResult | None]:
    """Find the damaged segments and write back only those from the snapshot (verified chunks)."""
    damage = find_damaged(store, snapshot_id, save_path, files=files, full=full)
    if dry_run or damage.ok:
        return damage, None
    return damage, store.heal(damage.snapshot_id, save_path, damage.segments)


