"""The zones tier: the head and tail of each file (where taggers write) kept in the store.

Each file's zones are its piece-aligned segments (whole pieces, the store's chunks) that touch
the first max(zone_head_kb, the metadata found at the head) bytes or the last max(zone_tail_kb,
the metadata at the tail) bytes (layout.py). They are read from the payload, proven against the
torrent's own hashes, and stored under their chunk ids, so a heal checks them as it checks a
snapshot's chunks; a file whose content another torrent already zoned costs nothing (same ids).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import ladder as rows
from ..errors import PayloadError
from ..piece_plan import Segment, file_segments
from ..scan import resolve_payload_path
from ..store.chunk import chunk_root, chunk_width
from ..torrent import FileEntry, TorrentMeta
from .layout import Extents, extents, file_reader
from .proof import read_range, segment_ok

log = logging.getLogger(__name__)


@dataclass
class ZonePlan:
    entry: FileEntry
    extents: Extents
    segments: list[Segment]
    head_bytes: int = 0
    tail_bytes: int = 0


@dataclass
class KeptZones:
    torrent_id: str
    files: int = 0
    bytes: int = 0  # logical bytes of the zones
    new_bytes: int = 0  # bytes the store did not hold yet
    plans: list[ZonePlan] = field(default_factory=list)


def zone_segments(meta: TorrentMeta, entry: FileEntry, ext: Extents, head_min: int, tail_min: int) -> ZonePlan:
    """The whole segments covering the head and tail zones of one file (pure)."""
    segs = file_segments(meta, entry)
    head = max(head_min, ext.head)
    tail = max(tail_min, ext.tail)
    picked = [s for s in segs if s.offset < head or s.offset + s.length > entry.size - tail]
    plan = ZonePlan(entry, ext, picked)
    plan.head_bytes = sum(s.length for s in picked if s.offset < head)
    plan.tail_bytes = sum(s.length for s in picked if s.offset >= head)
    return plan


def plan_zones(meta: TorrentMeta, save_path: Path, head_min: int, tail_min: int, files=None) -> list[ZonePlan]:
    plans = []
    for entry in meta.real_files:
        if entry.size == 0 or entry.symlink is not None or (files is not None and entry.index not in files):
            continue
        path = resolve_payload_path(save_path, entry)
        try:
            read = file_reader(path)
        except OSError as exc:
            raise PayloadError(path, f"cannot read it to keep its zones: {exc.strerror}") from exc
        try:
            ext = extents(read, entry.size)
        finally:
            read.close()
        plans.append(zone_segments(meta, entry, ext, head_min, tail_min))
    return plans


def keep_zones(store, catalog, meta: TorrentMeta, save_path, *, head_kb: int = 64, tail_kb: int = 64,
               files=None) -> KeptZones:
    """Read, prove and store the zones of every file (or of `files`, indices); records them in the
    catalog (replacing the torrent's previous zones). Raises PayloadError naming a segment that
    does not match the torrent: nothing is recorded then."""
    save_path = Path(save_path)
    plans = plan_zones(meta, save_path, head_kb * 1024, tail_kb * 1024, files)
    out = KeptZones(meta.id, plans=plans)
    chunks, zone_rows, file_rows = [], [], []
    sha = {r["file_index"]: r["sha256"] for r in catalog.get_files(meta.id)}
    for plan in plans:
        path = resolve_payload_path(save_path, plan.entry)
        single = len(meta.file_pieces(plan.entry)) == 1
        for seg in plan.segments:
            data = read_range(path, seg.offset, seg.length)
            if data is None or not segment_ok(meta, save_path, seg, data):
                raise PayloadError(path, f"piece {seg.piece} does not match the torrent; its zones are not kept")
            cid = chunk_root(data, chunk_width(meta, seg.length, single)).hex()
            chunks.append((cid, chunk_width(meta, seg.length, single), data))
            zone_rows.append((plan.entry.index, seg.piece, seg.offset, seg.length, cid))
            out.bytes += seg.length
        file_rows.append({"file_index": plan.entry.index, "size": plan.entry.size, "sha256": sha.get(plan.entry.index),
                          "kind": plan.extents.kind, "head_extent": plan.extents.head,
                          "tail_extent": plan.extents.tail, "head_bytes": plan.head_bytes,
                          "tail_bytes": plan.tail_bytes})
        if len(chunks) > 64:
            out.new_bytes += store.put_chunks(chunks)
            chunks = []
    if chunks:
        out.new_bytes += store.put_chunks(chunks)
    if catalog.get_torrent(meta.id) is None:
        catalog.upsert_torrent(meta, save_path=str(save_path))
    rows.set_zones(catalog, meta.id, file_rows, zone_rows)
    out.files = len(plans)
    log.info("%s: zones kept for %d files (%d bytes, %d new)", meta.name, out.files, out.bytes, out.new_bytes)
    return out


def zone_chunks(catalog, torrent_id: str) -> dict[tuple[int, int], str]:
    """(file_index, piece) -> chunk id of the kept zones."""
    return {(r["file_index"], r["piece"]): r["chunk_id"] for r in rows.zones(catalog, torrent_id)}


__all__ = ["KeptZones", "ZonePlan", "keep_zones", "plan_zones", "zone_chunks", "zone_segments"]
