"""Verdicts of a full scan: which pieces fail the torrent's own hashes, and what each file is.

File statuses (documented in the README):
  ok             every byte of the file that lies in a failed piece is proven unchanged
  damaged        some of its bytes are proven to differ from the torrent
  suspect        it has bytes in a failed v1 piece shared with other files, and nothing
                 proves them unchanged or changed ("in a failed piece, cannot tell")
  missing        not on disk (a BEP 47 symlink entry: no link there)
  size_mismatch  on disk with another size than the torrent says

Proof for a file's segment (its part of one piece): its v2 hash against the torrent's piece
layer or pieces root; its xxh3 against a baseline (the catalog's, from a verified scan); or,
in a failed piece, being the only contributor not proven unchanged. The verdict of a file
depends only on such proofs, never on other files' statuses, so the order of files never
changes a verdict.
"""

from .merkle import file_root
from .torrent import TorrentMeta

OK, DAMAGED, SUSPECT, MISSING, SIZE_MISMATCH = "ok", "damaged", "suspect", "missing", "size_mismatch"
STATUSES = (OK, DAMAGED, SUSPECT, MISSING, SIZE_MISMATCH)
_RANK = {OK: 0, SUSPECT: 1, DAMAGED: 2, SIZE_MISMATCH: 3, MISSING: 4}

CHANGED, UNCHANGED, UNKNOWN = "changed", "unchanged", "unknown"


def worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def judge(meta: TorrentMeta, results: list, piece_sha1: dict, bpp: int, baseline: dict | None = None) -> set[int]:
    """Set bad pieces and file statuses (and v2 roots) on `results` (FileScans of one scan).

    piece_sha1: piece -> SHA-1 of the bytes read (None when some were not there), for the v1
    pieces this scan covered. baseline: file_index -> {piece: xxh3} proving bytes unchanged.
    """
    bad: set[int] = set()
    v1_failed: set[int] = set()  # failed by a computed SHA-1 (all its bytes were read)
    if meta.has_v1:
        hashes = meta.v1_hashes
        for piece, digest in piece_sha1.items():
            if digest is None:
                bad.add(piece)
            elif digest != hashes[piece]:
                bad.add(piece)
                v1_failed.add(piece)
    has_v2 = meta.has_v2
    changed: set[tuple[int, int]] = set()  # (file index, piece): bytes proven to differ (or not there)
    unproven: set[int] = set()  # v2 files whose pieces no hash of the torrent speaks for
    root_changed: set[int] = set()  # v2 files whose whole-file root is wrong
    for fs in results:
        segs = fs.segments
        if not segs:
            continue
        index = fs.entry.index
        for seg in segs:
            if seg.digest is None:
                changed.add((index, seg.piece))  # the file ended before the segment did
        if has_v2:
            _v2_verdict(meta, fs, bpp, bad, changed, unproven, root_changed)
        elif segs[0].root is not None and all(s.root is not None for s in segs):  # v1 with chunk roots
            fs.v2_root = segs[0].root if len(segs) == 1 else file_root([s.root for s in segs], bpp, [])
    if bad:
        _blame(results, bad, v1_failed, changed, unproven, has_v2, baseline or {})
    verdict = {}
    for i in root_changed:
        verdict[i] = DAMAGED
    _finish(results, verdict)
    return bad


def _v2_verdict(meta, fs, bpp: int, bad: set, changed: set, unproven: set, root_changed: set) -> None:
    entry, segs = fs.entry, fs.segments
    index = entry.index
    if len(segs) == 1:
        seg = segs[0]
        if seg.root is None or seg.root != entry.root:
            bad.add(seg.piece)
            changed.add((index, seg.piece))
        if seg.root is not None:
            fs.v2_root = seg.root
        return
    expected = meta.v2_piece_hashes(entry)
    roots = [s.root for s in segs]
    complete = None not in roots
    whole = file_root(roots, bpp, []) if complete else None
    if complete:
        fs.v2_root = whole
    if expected is not None:
        for seg, want in zip(segs, expected):
            if seg.root is None or seg.root != want:
                bad.add(seg.piece)
                changed.add((index, seg.piece))
        return
    # No piece layer: the file verifies from its pieces root alone (as libtorrent does).
    if whole != entry.root:
        root_changed.add(index)
        unproven.add(index)
        if not meta.has_v1:  # libtorrent fails every piece of such a v2 file
            bad.update(s.piece for s in segs)


def _blame(results, bad: set, v1_failed: set, changed: set, unproven: set, has_v2: bool, baseline: dict) -> None:
    """Statuses for the files with bytes in failed pieces (companion.blame's rule)."""
    sharing: dict[int, list] = {}  # bad piece -> [(FileScan, proof)]
    for fs in results:
        index = fs.entry.index
        for seg in fs.segments:
            piece = seg.piece
            if piece not in bad:
                continue
            if (index, piece) in changed:
                proof = CHANGED
            elif has_v2 and index not in unproven:
                proof = UNCHANGED
            else:
                known = baseline.get(index)
                if known is not None and piece in known:
                    proof = UNCHANGED if known[piece] == seg.xxh3 else CHANGED
                else:
                    proof = UNKNOWN
            sharing.setdefault(piece, []).append((fs, proof))
    for piece, members in sharing.items():
        unknown = [fs for fs, p in members if p == UNKNOWN]
        if any(p == CHANGED for _, p in members):
            for fs, p in members:
                if p == CHANGED:
                    fs.status = worse(fs.status, DAMAGED)
            blamed, status = unknown, SUSPECT
        elif len(unknown) == 1 and piece in v1_failed:
            blamed, status = unknown, DAMAGED  # the only contributor not proven unchanged
        elif not unknown and piece in v1_failed:
            blamed, status = [fs for fs, _ in members], DAMAGED  # every part proven, yet the piece fails
        else:
            blamed, status = unknown, SUSPECT
        for fs in blamed:
            fs.status = worse(fs.status, status)


def _finish(results, verdict: dict) -> None:
    for fs in results:
        stat = fs.stat
        if stat is not None and fs.entry.symlink is None and stat.size != fs.entry.size:
            fs.status = worse(fs.status, SIZE_MISMATCH)
        if verdict:
            v = verdict.get(fs.entry.index)
            if v is not None:
                fs.status = worse(fs.status, v)
