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


def v2_expected(meta: TorrentMeta, entry, segments) -> list | None:
    """The torrent's hash for each segment of a v2 file: its piece layer, or its pieces root
    when the file fits in one piece; None when the torrent has no layer for a bigger file."""
    if len(segments) == 1:
        return [entry.root]
    return meta.v2_piece_hashes(entry)


def judge(meta: TorrentMeta, results: list, piece_sha1: dict, bpp: int, baseline: dict | None = None) -> set[int]:
    """Set bad pieces and file statuses (and v2 roots) on `results` (FileScans of one scan).

    piece_sha1: piece -> SHA-1 of the bytes read (None when some were not there), for the v1
    pieces this scan covered. baseline: file_index -> {piece: xxh3} proving bytes unchanged.
    """
    bad: set[int] = set()
    v1_failed: set[int] = set()  # failed by a computed SHA-1 (all its bytes were read)
    if meta.has_v1:
        for piece, digest in piece_sha1.items():
            if digest is None:
                bad.add(piece)
            elif digest != meta.v1_hashes[piece]:
                bad.add(piece)
                v1_failed.add(piece)
    proofs: dict[tuple[int, int], str] = {}  # (file index, piece) -> proof
    root_changed: set[int] = set()  # v2 files whose whole-file root is wrong
    for fs in results:
        entry, segs = fs.entry, fs.segments
        if not segs:
            continue
        if meta.has_v2:
            expected = v2_expected(meta, entry, segs)
            roots = [s.root for s in segs]
            if expected is not None:
                for seg, want in zip(segs, expected):
                    ok = seg.root is not None and seg.root == want
                    proofs[(entry.index, seg.piece)] = UNCHANGED if ok else CHANGED
                    if not ok:
                        bad.add(seg.piece)
            else:  # no piece layer: the file verifies from its pieces root alone (as libtorrent does)
                whole = file_root(roots, bpp, []) if all(r is not None for r in roots) else None
                if whole == entry.root:
                    for seg in segs:
                        proofs[(entry.index, seg.piece)] = UNCHANGED
                else:
                    root_changed.add(entry.index)
                    if not meta.has_v1:  # libtorrent fails every piece of such a v2 file
                        bad.update(s.piece for s in segs)
        if all(s.root is not None for s in segs):
            fs.v2_root = segs[0].root if len(segs) == 1 else file_root([s.root for s in segs], bpp, [])
        known = (baseline or {}).get(entry.index) or {}
        for seg in segs:
            key = (entry.index, seg.piece)
            if seg.xxh3 is None:
                proofs[key] = CHANGED  # the file ended before the segment did
            elif key not in proofs and seg.piece in known:
                proofs[key] = UNCHANGED if known[seg.piece] == seg.xxh3 else CHANGED
    _set_statuses(results, bad, v1_failed, proofs, root_changed)
    return bad


def _set_statuses(results, bad: set[int], v1_failed: set[int], proofs: dict, root_changed: set[int]) -> None:
    verdict: dict[int, str] = {}
    sharing: dict[int, list[tuple[int, str]]] = {}  # bad piece -> [(file index, proof)]
    for fs in results:
        for seg in fs.segments:
            if seg.piece in bad:
                proof = proofs.get((fs.entry.index, seg.piece), UNKNOWN)
                sharing.setdefault(seg.piece, []).append((fs.entry.index, proof))
    for piece, members in sharing.items():
        changed = [i for i, p in members if p == CHANGED]
        unknown = [i for i, p in members if p == UNKNOWN]
        for i in changed:
            verdict[i] = DAMAGED
        if changed:
            blamed, status = unknown, SUSPECT
        elif len(unknown) == 1 and piece in v1_failed:
            blamed, status = unknown, DAMAGED  # the only contributor not proven unchanged
        elif not unknown and piece in v1_failed:
            blamed, status = [i for i, _ in members], DAMAGED  # every part proven, yet the piece fails
        else:
            blamed, status = unknown, SUSPECT
        for i in blamed:
            verdict[i] = worse(verdict.get(i, OK), status)
    for i in root_changed:
        verdict[i] = DAMAGED
    for fs in results:
        status = fs.status
        if fs.stat is not None and fs.entry.symlink is None and fs.stat.size != fs.entry.size:
            status = worse(status, SIZE_MISMATCH)
        fs.status = worse(status, verdict.get(fs.entry.index, OK))
