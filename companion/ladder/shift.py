"""Shift-aware heal: a file that grew or shrank (a tagger rewrote its header or appended or removed
a tail tag) still holds most of its original pieces, at a shifted offset. Each original segment
is looked for in the drifted file at the candidate shifts (the last one that matched, the change
of the metadata's size at the head, the change of the file's size, none); a candidate is taken
only when its bytes make the torrent's piece (quick xxh3 against the catalog first, then the
torrent's own SHA-1 / SHA-256). Segments found nowhere (the rewritten metadata itself) come from
the other tiers (`supply`). The original is rebuilt in a staged file beside the payload from the
proven bytes; the drifted file is left as it is (the heal moves it to quarantine)."""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from ..piece_plan import Segment, file_segments
from ..store.reflink import ALIGN, clone_fd
from ..torrent import FileEntry, TorrentMeta
from .layout import extents, file_reader
from .proof import segment_ok

BATCH = 64  # segments per task (two tasks run at once: hashlib releases the GIL)


@dataclass
class Rebuild:
    entry: FileEntry
    staged: Path | None
    shifted: dict[int, int] = field(default_factory=dict)  # piece -> shift it was found at
    supplied: dict[int, str] = field(default_factory=dict)  # piece -> tier that gave it
    missing: list[int] = field(default_factory=list)
    bytes_read: int = 0
    cloned: int = 0  # bytes cloned from the drifted file instead of written (a block-aligned shift)

    @property
    def complete(self) -> bool:
        return not self.missing


def candidate_shifts(entry: FileEntry, drifted: Path, old_head: int | None, old_kind: str | None) -> list[int]:
    """Shifts to try, most likely first: the head metadata's change of size (same container kind),
    the file's change of size, none."""
    size = os.stat(drifted).st_size
    out = []
    if old_head is not None:
        read = file_reader(drifted)
        try:
            new = extents(read, size)
        finally:
            read.close()
        if new.kind and new.kind == old_kind:
            out.append(new.head - old_head)
    out += [size - entry.size, 0]
    return list(dict.fromkeys(out))


def rebuild(meta: TorrentMeta, save_path: Path, entry: FileEntry, drifted: Path, staged: Path, *,
            baseline: dict[int, str] | None = None, shifts: list[int] | None = None, supply=None) -> Rebuild:
    """Rebuild the original file in `staged` from the drifted file's own bytes (found at a shift)
    and `supply(segment) -> (bytes, tier) | None` for the rest. Every segment written is proven
    against the torrent. The staged file is removed again when any segment is missing."""
    baseline = baseline or {}
    shifts = shifts if shifts is not None else [os.stat(drifted).st_size - entry.size, 0]
    size = os.stat(drifted).st_size
    segs = file_segments(meta, entry)
    out = Rebuild(entry, staged)
    src = os.open(drifted, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    staged.parent.mkdir(parents=True, exist_ok=True)
    dst = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(dst, entry.size)

        def work(batch: list[Segment]) -> tuple[dict, list, int, int]:
            found, rest, read, hits = {}, [], 0, []
            last = None
            for seg in batch:
                hit = None
                for d in dict.fromkeys(([last] if last is not None else []) + shifts):
                    at = seg.offset + d
                    if at < 0 or at + seg.length > size:
                        continue
                    data = os.pread(src, seg.length, at)
                    read += len(data)
                    want = baseline.get(seg.piece)
                    if want is not None and xxhash.xxh3_64_hexdigest(data) != want:
                        continue
                    if segment_ok(meta, save_path, seg, data, both=False):
                        hit = (d, data)
                        break
                if hit is None:
                    rest.append(seg)
                    continue
                last = hit[0]
                found[seg.piece] = hit[0]
                hits.append((seg, hit[0], hit[1]))
            return found, rest, read, _place(src, dst, hits)

        batches = [segs[i : i + BATCH] for i in range(0, len(segs), BATCH)]
        with ThreadPoolExecutor(2, thread_name_prefix="shift") as pool:
            for found, rest, read, cloned in pool.map(work, batches):
                out.shifted.update(found)
                out.bytes_read += read
                out.cloned += cloned
                for seg in rest:
                    got = supply(seg) if supply is not None else None
                    if got is None or not segment_ok(meta, save_path, seg, got[0]):
                        out.missing.append(seg.piece)
                        continue
                    out.supplied[seg.piece] = got[1]
                    _pwrite_all(dst, got[0], seg.offset)
        if not out.missing:
            os.fsync(dst)
    finally:
        os.close(src)
        os.close(dst)
    if out.missing:
        staged.unlink(missing_ok=True)
        out.staged = None
    else:
        try:
            os.chmod(staged, os.stat(drifted).st_mode & 0o7777)
        except OSError:
            pass
    return out


def _place(src: int, dst: int, hits: list) -> int:
    """Write proven segments into the staged file: a run of them found at the same block-aligned
    shift is cloned from the drifted file (reflinks: btrfs, XFS; no byte written), the rest written
    from memory. Returns the bytes cloned."""
    cloned = 0
    i = 0
    while i < len(hits):
        j = i + 1
        while j < len(hits) and hits[j][1] == hits[i][1] and hits[j][0].offset == hits[j - 1][0].offset + hits[j - 1][0].length:
            j += 1
        run, d = hits[i:j], hits[i][1]
        start, end = run[0][0].offset, run[-1][0].offset + run[-1][0].length
        done = start
        if d % ALIGN == 0 and start % ALIGN == 0:
            n = (end - start) // ALIGN * ALIGN
            if n and clone_fd(src, start + d, dst, start, n):
                done, cloned = start + n, cloned + n
        for seg, _d, data in run:
            if seg.offset + seg.length > done:
                skip = max(0, done - seg.offset)
                _pwrite_all(dst, memoryview(data)[skip:], seg.offset + skip)
        i = j
    return cloned


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
