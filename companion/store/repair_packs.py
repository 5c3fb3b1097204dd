"""`check-store --repair` (restic's `repair packs`): rewrite the packs a check found damaged.

Every chunk of a damaged pack (a copy that does not match its id, a pack that is missing or
whose trailer disagrees with the index) goes into new packs: good copies are read back and
verified, bad or missing ones are taken from payload files that still verify, the bytes
matching the chunk's id and the torrent's own piece hash. A new full index is made durable
before the damaged packs and the index files it replaces are deleted (prune's order). Chunks
no payload can give back are dropped from the index and named: snapshots using them stay
suspect, and the next snapshot of the torrent stores them again. The suspect mark of every
snapshot the repair made whole is cleared.
"""

import logging
from dataclasses import asdict, dataclass, field

from ..catalog import chunks
from ..catalog import content as content_rows
from ..catalog.chunks import bad_chunks, forget_bad_copies
from ..errors import Error, StoreCorrupt
from ..ladder.proof import read_range, segment_of, segment_ok
from ..locate import catalog_meta
from ..piece_plan import file_segments
from ..scan import resolve_payload_path
from .chunk import chunk_root
from .maintenance import check, clear_whole_suspects, mark_suspects
from .pack import PackWriter, pack_name

log = logging.getLogger(__name__)


@dataclass
class RepairResult:
    packs_rewritten: list[str] = field(default_factory=list)
    chunks_salvaged: int = 0  # good copies moved out of damaged packs
    chunks_recovered: list[str] = field(default_factory=list)  # bad or missing, rewritten from a payload
    chunks_lost: list[str] = field(default_factory=list)  # no payload still gives them back
    snapshots_cleared: list[str] = field(default_factory=list)
    check_errors: list[str] = field(default_factory=list)  # what the check found first
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.chunks_lost

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def repair_packs(store, *, dry_run: bool = False) -> RepairResult:
    out = RepairResult(dry_run=dry_run)
    with store.backend.lock(store.lock_timeout):
        result = check(store, read_data=True)
        out.check_errors = result.errors
        store.index.reload()
        by_pack = store.index.packs()
        bad = bad_chunks(store.catalog)
        broken: dict[str, set[str]] = {}  # pack -> its chunks that need a payload
        for pack_id, cid in result.bad_copies:
            broken.setdefault(pack_id, set()).add(cid)
        for pack_id, entries in by_pack.items():
            need = {cid for cid, _e in entries if pack_id in bad.get(cid, ())}  # found by an earlier scrub
            if need:
                broken.setdefault(pack_id, set()).update(need)
        out.packs_rewritten = sorted(broken)
        if not broken:
            return out
        sources = _payload_sources(store, {cid for need in broken.values() for cid in need})
        writer = None if dry_run else PackWriter(store.backend, store.pack_size)
        try:
            for pack_id in sorted(broken):
                for cid, e in by_pack[pack_id]:
                    if cid in broken[pack_id]:
                        data = _from_payload(store, cid, e.width, sources.get(cid, []))
                        if data is None:
                            out.chunks_lost.append(cid)
                            continue
                        out.chunks_recovered.append(cid)
                    else:
                        try:
                            data = store.read_chunk(cid)
                        except StoreCorrupt:
                            data = _from_payload(store, cid, e.width, sources.get(cid, []))
                            if data is None:
                                out.chunks_lost.append(cid)
                                continue
                        out.chunks_salvaged += 1
                    if writer is not None:
                        writer.append(cid, e.width, data)
            if dry_run:
                return out
            packs = writer.finish()
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        keep = {p: [[cid, e.offset, e.length, e.width] for cid, e in entries]
                for p, entries in by_pack.items() if p not in broken}
        for p in packs:
            keep[p.pack_id] = p.entries
        old_files = list(store.index.files)
        store.index.write(keep)  # durable before anything it no longer names is deleted
        for name in old_files:
            store.backend.delete(name)
        for pack_id in broken:
            store.backend.delete(pack_name(pack_id))
        store.index.reload()
        forget_bad_copies(store.catalog, [(cid, p) for cid, packs_ in bad.items() for p in packs_ if p in broken])
        if out.chunks_lost:
            mark_suspects(store, out.chunks_lost, "stored chunks are lost (no payload still gives them back)")
        out.snapshots_cleared = clear_whole_suspects(store, out.chunks_recovered + [
            cid for p in broken for cid, _e in by_pack[p]])
    log.info("store repair: %d packs rewritten, %d chunks recovered, %d salvaged, %d lost",
             len(out.packs_rewritten), len(out.chunks_recovered), out.chunks_salvaged, len(out.chunks_lost))
    return out


def _payload_sources(store, chunk_ids: set[str]) -> dict[str, list]:
    """chunk id -> [(torrent id, file index, piece, offset, length)] from every snapshot using it
    as a segment (piece None: a content chunk, from any cataloged file with that content)."""
    out = chunks.chunk_sources(store.catalog, chunk_ids)
    for cid, places in content_rows.chunk_places(store.catalog, chunk_ids).items():
        for sha256, offset, length in places:
            for f in content_rows.files_with(store.catalog, sha256):
                out.setdefault(cid, []).append((f["torrent_id"], f["file_index"], None, offset, length))
    return out


def _from_payload(store, cid: str, width: int, sources: list) -> bytes | None:
    """The chunk's bytes from a payload file that still verifies: they match the chunk id and
    make the torrent's pieces (every piece the range touches). None when no payload gives them."""
    for tid, file_index, piece, offset, length in sources:
        try:
            meta, save_path = catalog_meta(store.catalog, tid)
        except Error:
            continue
        entry = next((e for e in meta.real_files if e.index == file_index), None)
        if entry is None:
            continue
        try:
            path = resolve_payload_path(save_path, entry)
        except Error:
            continue
        data = read_range(path, offset, length)
        if data is None or chunk_root(data, width).hex() != cid:
            continue
        if piece is None:
            if _range_proven(meta, save_path, entry, path, offset, length):
                return data
        elif segment_ok(meta, save_path, segment_of(meta, entry, piece), data):
            return data
    return None


def _range_proven(meta, save_path, entry, path, offset: int, length: int) -> bool:
    """Every segment of the file touching [offset, offset + length) matches the torrent."""
    for seg in file_segments(meta, entry):
        if seg.offset + seg.length <= offset or seg.offset >= offset + length:
            continue
        data = read_range(path, seg.offset, seg.length)
        if data is None or not segment_ok(meta, save_path, seg, data):
            return False
    return True


__all__ = ["RepairResult", "repair_packs"]
