"""A torrent's piece-aligned segments read out of content chunks.

A content snapshot (store layout 2) keeps its files as content chunks (content.py) and its
torrent's segments only as records: `Store.read_chunk(segment id)` finds where a snapshot holds
that segment (file content, offset, length), reads the content chunks covering it (each verified
against its id), cuts the segment out and verifies it against the segment id too, so every
caller that reads a snapshot segment by segment (the heal writer, drills, archives, quarantine
exports) gets the same verified bytes as from an older, piece-aligned snapshot.
"""

import threading
from collections import OrderedDict
from pathlib import Path

from ..catalog import content as rows
from ..catalog import fssnap as fs_rows
from ..ladder.proof import read_range
from ..errors import StoreCorrupt
from ..merkle import _next_pow2
from ..torrent import BLOCK
from .chunk import chunk_root

RECENT_BYTES = 48 * 1024 * 1024  # content chunks kept after a read: segments are read in order
MEMO_ENTRIES = 200_000


class SegmentReader:
    def __init__(self, store):
        self.store = store
        self.lock = threading.Lock()
        self.recent: OrderedDict[str, bytes] = OrderedDict()
        self.recent_bytes = 0
        self.memo: dict[str, tuple] = {}  # segment id -> (sha256, offset, length, width)

    def chunk(self, chunk_id: str) -> bytes:
        """A content chunk, verified (the few last read are kept in memory)."""
        with self.lock:
            data = self.recent.get(chunk_id)
            if data is not None:
                self.recent.move_to_end(chunk_id)
                return data
        data = self.store.read_indexed(chunk_id)
        with self.lock:
            if chunk_id not in self.recent:
                self.recent[chunk_id] = data
                self.recent_bytes += len(data)
            while self.recent_bytes > RECENT_BYTES and len(self.recent) > 1:
                _cid, old = self.recent.popitem(last=False)
                self.recent_bytes -= len(old)
        return data

    def _where(self, segment_id: str) -> list[tuple]:
        with self.lock:
            hit = self.memo.get(segment_id)
        if hit is not None:
            return [hit]
        found = []
        for loc in rows.locate_segment(self.store.catalog, segment_id):
            if not loc["sha256"]:
                continue
            piece_length = loc["piece_length"] or self._piece_length(loc["torrent_id"])
            if piece_length is None:
                continue
            # Every segment of that file at once: the next reads are of its neighbours.
            segs = rows.file_segments(self.store.catalog, loc["snapshot_id"], loc["file_index"])
            single = len(segs) == 1
            found_here = None
            with self.lock:
                if len(self.memo) > MEMO_ENTRIES:
                    self.memo.clear()
                for s in segs:
                    w = _next_pow2(max(1, -(-s["length"] // BLOCK))) if single else max(1, piece_length // BLOCK)
                    place = (loc["sha256"], s["offset"], s["length"], w)
                    self.memo.setdefault(s["chunk_id"], place)
                    if s["chunk_id"] == segment_id:
                        found_here = place
            if found_here is not None:
                found.append(found_here)
        return found

    def _piece_length(self, torrent_id: str) -> int | None:
        try:
            raw = self.store.backend.get_bytes(f"torrents/{torrent_id}.torrent")
        except StoreCorrupt:
            return None
        from ..torrent import load_torrent

        return load_torrent(raw, source=f"{self.store.backend.where}/torrents/{torrent_id}.torrent").piece_length

    def _in_fs_snapshot(self, segment_id: str) -> bytes | None:
        """The segment from a read-only filesystem snapshot holding it (store/fssnap.py), verified."""
        for loc in fs_rows.locate_segment(self.store.catalog, segment_id):
            pl = loc["piece_length"] or self._piece_length_of(loc["snapshot_id"])
            if pl is None:
                continue
            w = _next_pow2(max(1, -(-loc["length"] // BLOCK))) if loc["segments"] == 1 else max(1, pl // BLOCK)
            data = read_range(Path(loc["root"]) / loc["path"], loc["offset"], loc["length"])
            if data is not None and chunk_root(data, w).hex() == segment_id:
                return data
            raise StoreCorrupt(loc["root"], f"segment {segment_id}: the read-only snapshot's copy of {loc['path']}"
                               " is gone or does not match it")
        return None

    def _piece_length_of(self, snapshot_id: str) -> int | None:
        from ..catalog.snapshots import get_snapshot

        snap = get_snapshot(self.store.catalog, snapshot_id)
        return self._piece_length(snap["torrent_id"]) if snap else None

    def read(self, segment_id: str) -> bytes | None:
        """The segment's bytes, verified; None when no content or filesystem snapshot holds a segment
        with this id. Raises StoreCorrupt when one does but the bytes are not there or not right."""
        places = self._where(segment_id)
        if not places:
            return self._in_fs_snapshot(segment_id)
        error = None
        for sha256, offset, length, width in places:
            try:
                data = self.range(sha256, offset, length)
            except StoreCorrupt as exc:
                error = error or StoreCorrupt(self.store.backend.where, f"segment {segment_id}: {exc.args[-1]}")
                # A content chunk that fails its id may still hold this segment intact: its own id
                # (the merkle root of its blocks) proves the bytes cut out of the unverified chunk.
                data = self.range(sha256, offset, length, verified=False, quiet=True)
                if data is not None and chunk_root(data, width).hex() == segment_id:
                    return data
                continue
            if chunk_root(data, width).hex() == segment_id:
                return data
            error = error or StoreCorrupt(self.store.backend.where, f"segment {segment_id} cut from the content"
                                          f" chunks of {sha256[:16]} does not match its id (corrupt data)")
        raise error

    def range(self, sha256: str, offset: int, length: int, verified: bool = True, quiet: bool = False):
        """[offset, offset + length) of a stored file content, from its verified chunks (verified=False:
        as stored, for the caller to prove; quiet: None instead of StoreCorrupt)."""
        parts, pos = [], offset
        for r in rows.chunks_in(self.store.catalog, sha256, offset, length):
            if r["offset"] > pos:
                break
            try:
                data = self.chunk(r["chunk_id"]) if verified else self.store.read_indexed(r["chunk_id"], verify=False)
            except StoreCorrupt:
                if quiet:
                    return None
                raise
            lo = pos - r["offset"]
            hi = min(len(data), offset + length - r["offset"])
            parts.append(memoryview(data)[lo:hi])
            pos = r["offset"] + hi
            if pos >= offset + length:
                break
        if pos < offset + length:
            if quiet:
                return None
            raise StoreCorrupt(self.store.backend.where, f"file content {sha256[:16]}: no stored chunk holds bytes"
                               f" {pos}..{offset + length}")
        return b"".join(parts)
