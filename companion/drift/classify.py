"""The drift diff: what happened to a protected file, from its catalog record and a quick verify (pure)."""

from dataclasses import dataclass, field

FALSE_ALARM = "false_alarm"
DAMAGED = "damaged"  # same size, same inode: some pieces changed in place
TRUNCATED = "truncated"
EXTENDED = "extended"
MISSING = "missing"
REPLACED = "replaced"  # another inode at the path (write temp, rename over) with other bytes

KINDS = (FALSE_ALARM, DAMAGED, TRUNCATED, EXTENDED, MISSING, REPLACED)
# Kinds whose heal writes the whole file back from the store.
WHOLE_FILE = {TRUNCATED, MISSING, REPLACED}
# Kinds after which qBittorrent's own view of the payload is stale: ask for a full recheck.
NEEDS_RECHECK = {TRUNCATED, EXTENDED, MISSING, REPLACED}


@dataclass(frozen=True)
class Baseline:
    """What the catalog remembers of one payload file."""

    size: int
    inode: int | None = None
    device: int | None = None


@dataclass(frozen=True)
class Observed:
    """A quick verify of the file now: scan status, bad segments and the current stat."""

    status: str  # ok | damaged | missing | size_mismatch (companion.scan)
    bad_segments: tuple = ()  # (piece, offset in file, length)
    size: int | None = None
    inode: int | None = None
    device: int | None = None
    nlink: int = 1


@dataclass(frozen=True)
class Drift:
    kind: str
    bad_segments: tuple = field(default=())  # the segments to write back (all of them for whole-file kinds)
    hardlinked: bool = False  # more than one link: an edit through another path corrupts the seed
    detail: str = ""

    @property
    def whole_file(self) -> bool:
        return self.kind in WHOLE_FILE

    @property
    def needs_recheck(self) -> bool:
        return self.kind in NEEDS_RECHECK

    @property
    def pieces(self) -> list[int]:
        return sorted({p for p, _, _ in self.bad_segments})


def classify(baseline: Baseline, seen: Observed) -> Drift:
    """Decide the kind of drift. A file whose bytes all match is a false alarm, even when a
    tool rewrote it as a new inode with the same content (its new stat is then recorded)."""
    hardlinked = seen.nlink > 1
    if seen.status == "missing" or seen.size is None:
        return Drift(MISSING, tuple(seen.bad_segments), False, "file is gone")
    bad = tuple(seen.bad_segments)
    if seen.size < baseline.size:
        return Drift(TRUNCATED, bad, hardlinked, f"{baseline.size} -> {seen.size} bytes")
    if seen.size > baseline.size:
        return Drift(EXTENDED, bad, hardlinked, f"{baseline.size} -> {seen.size} bytes")
    moved = baseline.inode is not None and (seen.inode, seen.device) != (baseline.inode, baseline.device)
    if not bad:
        return Drift(FALSE_ALARM, (), hardlinked, "rewritten with the same bytes" if moved else "")
    if moved:
        return Drift(REPLACED, bad, hardlinked, f"inode {baseline.inode} -> {seen.inode}")
    return Drift(DAMAGED, bad, hardlinked, f"{len({p for p, _, _ in bad})} pieces changed")
