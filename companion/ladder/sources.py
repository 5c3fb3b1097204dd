"""Original bytes for a drifted torrent from the ladder's tiers, cheapest first, each proven
against the torrent's own hashes: sibling (another torrent's copy of the file), zones (head and
tail segments in the store), parity (the file as its PAR2 recovery set rebuilds it, in scratch),
the shift-aware rebuild (the drifted file's own bytes at a shift).

The result plugs into the heal writer (drift/heal.py) as it is: `chunk_ids` and `read_chunk`
for damage in place (ids are the segments' chunk ids, which the writer checks again), and
`rebuilt` for whole files rebuilt in a staged file beside the payload."""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import fssnap as fs_rows
from ..catalog import ladder as zone_rows
from ..drift.classify import DAMAGED, EXTENDED, REPLACED
from ..catalog import parity as parity_rows
from ..errors import Error
from ..piece_plan import Segment, file_segments
from ..store.chunk import chunk_root, chunk_width
from ..store.reflink import ALIGN, clone_fd
from .parity import Repairs
from .proof import read_range, segment_ok
from .shift import candidate_shifts, rebuild
from .sibling import holders, links_all_seeded, siblings

log = logging.getLogger(__name__)

SIBLING, FS, ZONES, PARITY, SHIFT, SNAPSHOT = "sibling", "fs-snapshot", "zones", "parity", "shift", "snapshot"
IN_PLACE = {DAMAGED}  # drift kinds healed segment by segment; the others are rebuilt whole
AT_THEIR_PLACE = {EXTENDED, REPLACED}  # ...unless their bytes did not move (_unmoved)


@dataclass
class Supply:
    torrent_id: str
    chunk_ids: dict = field(default_factory=dict)  # (file_index, piece) -> chunk id (in-place damage)
    data: dict = field(default_factory=dict)  # chunk id -> proven bytes not in the store (siblings)
    rebuilt: dict = field(default_factory=dict)  # file_index -> staged whole file, every piece proven
    tiers: dict = field(default_factory=dict)  # (file_index, piece) -> tier that gave it
    missing: dict = field(default_factory=dict)  # file_index -> pieces no tier could give
    shared: dict = field(default_factory=dict)  # file_index -> [(torrent, file)] seeding the same inode: healed in place
    store: object = None
    repairs: object = None  # parity.Repairs: files par2 rebuilt in scratch
    in_place: set = field(default_factory=set)  # replaced files healed in place (their bytes did not move)
    cloned: int = 0  # bytes of rebuilt files cloned from the drifted file (a block-aligned shift), not written

    @property
    def complete(self) -> bool:
        return not self.missing

    def read_chunk(self, chunk_id: str) -> bytes:
        if chunk_id in self.data:
            return self.data[chunk_id]
        return self.store.read_chunk(chunk_id)

    def discard(self) -> None:
        """The supply is not used: remove its staged rebuilds and its scratch."""
        for path in self.rebuilt.values():
            Path(path).unlink(missing_ok=True)
        self.rebuilt.clear()
        self.close()

    def close(self) -> None:
        """Remove the scratch files (par2's repaired copies) once the heal is over."""
        if self.repairs is not None:
            self.repairs.close()

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for tier in self.tiers.values():
            counts[tier] = counts.get(tier, 0) + 1
        return counts


class _Tiers:
    """Proven bytes for one segment of one file: sibling, read-only filesystem snapshot, zones, parity."""

    def __init__(self, catalog, store, meta, save_path: Path, entry, damaged_path: Path, repairs=None):
        self.meta, self.save_path, self.entry, self.store, self.repairs = meta, save_path, entry, store, repairs
        self.single = len(meta.file_pieces(entry)) == 1
        self.sibs = siblings(catalog, meta.id, entry.index, damaged_path)
        sha = next((r["sha256"] for r in catalog.get_files(meta.id) if r["file_index"] == entry.index), None)
        self.fs = [Path(r["root"]) / r["path"] for r in fs_rows.copies(catalog, sha)]
        self.fs = [p for p in self.fs if os.path.isfile(p)]
        self.zones = {(r["file_index"], r["piece"]): r["chunk_id"] for r in zone_rows.zones(catalog, meta.id)
                      if r["file_index"] == entry.index}

    def width(self, seg: Segment) -> int:
        return chunk_width(self.meta, seg.length, self.single)

    def __call__(self, seg: Segment, cheap: bool = False):
        """(bytes, tier) or None; cheap: siblings and zones only (no par2 run)."""
        for tier, paths in ((SIBLING, self.sibs), (FS, self.fs)):
            for path in paths:
                data = read_range(path, seg.offset, seg.length)
                if data is not None and segment_ok(self.meta, self.save_path, seg, data):
                    return data, tier
        cid = self.zones.get((self.entry.index, seg.piece)) if self.store is not None else None
        if cid is not None:
            try:
                data = self.store.read_chunk(cid)
            except Error as exc:
                log.warning("%s: zone chunk %s unreadable: %s", self.meta.name, cid[:16], exc)
                return None
            if segment_ok(self.meta, self.save_path, seg, data):
                return data, ZONES
        repaired = self.repairs.file(self.entry.index) if self.repairs is not None and not cheap else None
        if repaired is not None:
            data = read_range(repaired, seg.offset, seg.length)
            if data is not None and segment_ok(self.meta, self.save_path, seg, data):
                return data, PARITY
        return None


def supply_for(catalog, store, meta, save_path, damages, scratch=None) -> Supply:
    """Original bytes for every damaged segment of `damages` (drift/heal.py FileDamage) from the
    ladder's tiers. Check `complete` (else `missing` says what no tier has); call `discard` when
    the supply is not used (it removes staged rebuilds), `close` after the heal (scratch: where
    par2 rebuilds a file from its recovery set; a temporary folder by default)."""
    save_path = Path(save_path)
    out = Supply(meta.id, store=store)
    if store is not None and parity_rows.parity_sets(catalog, meta.id):
        out.repairs = Repairs(store, catalog, meta, save_path, scratch)
    baseline = {}
    for r in catalog.get_segments(meta.id):
        baseline.setdefault(r["file_index"], {})[r["piece"]] = r["xxh3"]
    zoned = zone_rows.zone_files(catalog, meta.id)
    try:
        for dmg in damages:
            entry = dmg.entry
            if dmg.drift.hardlinked and links_all_seeded(catalog, meta.id, entry.index, dmg.path):
                out.shared[entry.index] = holders(catalog, meta.id, entry.index)
            tiers = _Tiers(catalog, store, meta, save_path, entry, dmg.path, out.repairs)
            if dmg.drift.kind in IN_PLACE and not os.path.islink(dmg.path):
                for seg in dmg.segments(meta):
                    got = tiers(seg)
                    if got is None:
                        out.missing.setdefault(entry.index, []).append(seg.piece)
                        continue
                    _take(out, tiers, entry, seg, *got)
                continue
            if _unmoved(meta, dmg, tiers, out):
                continue  # a tail tag appended, a file rewritten at the same size: only its changed pieces
            _rebuild_whole(meta, save_path, dmg, tiers, baseline.get(entry.index), zoned.get(entry.index), out)
    except BaseException:
        out.discard()
        raise
    return out


def _take(out: Supply, tiers: _Tiers, entry, seg, data, tier: str) -> None:
    cid = chunk_root(data, tiers.width(seg)).hex()
    out.chunk_ids[(entry.index, seg.piece)] = cid
    out.tiers[(entry.index, seg.piece)] = tier
    if tier != ZONES:  # zones are in the store; other tiers' bytes are held here
        out.data[cid] = data


def _unmoved(meta, dmg, tiers: _Tiers, out: Supply) -> bool:
    """A grown file whose original bytes did not move (a tail tag appended) or a file rewritten at
    the same size is healed in place: the quick verify found its changed pieces at their own
    offsets; when siblings or zones give all of them, nothing else is written (the grown tail goes
    to quarantine and is cut). False when it must be rebuilt (its bytes moved)."""
    if dmg.drift.kind not in AT_THEIR_PLACE or os.path.islink(dmg.path) or not os.path.isfile(dmg.path):
        return False
    if dmg.drift.kind == REPLACED and os.path.getsize(dmg.path) != dmg.entry.size:
        return False
    bad = set(dmg.drift.pieces)
    every = file_segments(meta, dmg.entry)
    segs = [s for s in every if s.piece in bad]
    zoned = {p for (i, p) in tiers.zones if i == dmg.entry.index}
    if not bad <= zoned and len(segs) * 4 > len(every):
        return False  # most pieces changed at their own offsets: its bytes moved (a resized header)
    found = []
    for seg in segs:
        got = tiers(seg, cheap=True)
        if got is None:
            return False
        found.append((seg, got))
    for seg, got in found:
        _take(out, tiers, dmg.entry, seg, *got)
    if dmg.drift.kind == REPLACED:
        out.in_place.add(dmg.entry.index)
    return True


def _rebuild_whole(meta, save_path: Path, dmg, tiers: _Tiers, baseline, zoned, out: Supply) -> None:
    entry = dmg.entry
    staged = dmg.path.with_name(f".{dmg.path.name}.seedward-rebuild")
    whole = [(SIBLING, p) for p in tiers.sibs] + [(FS, p) for p in tiers.fs]
    clonable = next(((t, p) for t, p in whole if _clonable(p, staged.parent)), None)
    if clonable is not None:  # a whole copy on this filesystem: cloned, not written (then proven)
        own, drifted = clonable
        shifts = [0]
    elif not os.path.lexists(dmg.path) or os.path.islink(dmg.path) or not os.path.isfile(dmg.path):
        if not whole:  # a missing file: only a whole copy has all of it
            out.missing[entry.index] = [s.piece for s in file_segments(meta, entry)]
            return
        (own, drifted), shifts = whole[0], [0]
    else:
        own, drifted = SHIFT, dmg.path
        shifts = candidate_shifts(entry, drifted, zoned["head_extent"] if zoned else None,
                                  zoned["kind"] if zoned else None)
    result = rebuild(meta, save_path, entry, drifted, staged, baseline=baseline, shifts=shifts, supply=tiers)
    if not result.complete:
        out.missing[entry.index] = result.missing
        return
    out.rebuilt[entry.index] = staged
    out.cloned += result.cloned
    for piece, d in result.shifted.items():
        out.tiers[(entry.index, piece)] = own if d or own != SHIFT else "intact"
    for piece, tier in result.supplied.items():
        out.tiers[(entry.index, piece)] = tier


def _clonable(path: Path, folder: Path) -> bool:
    """Whether `path`'s blocks can be cloned (reflinks) into a new file in `folder`."""
    import tempfile

    try:
        if os.path.getsize(path) < ALIGN:
            return False
        src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            return clone_fd(src, 0, probe.fileno(), 0, ALIGN)
    except OSError:
        return False
    finally:
        os.close(src)
