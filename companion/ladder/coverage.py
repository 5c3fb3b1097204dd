"""Coverage: which damage classes a torrent survives, and from which tier (pure over facts).

A class is survived when every file of the torrent can be given back its original bytes by a
tier seedward holds (the swarm is listed, never counted: it is exactly what fails for rare
content). What each tier heals:
  in-place tag edit     zones (when they cover the file's metadata), parity (when its recovery
                        blocks span that metadata), sibling, full snapshot
  resized header        shift + zones, shift + parity (par2 finds the moved blocks too), sibling, full
  tail tag appended     shift (the original bytes are all still there), sibling, full
  tail tag removed      zones (tail), parity (tail metadata within its capacity), sibling, full
  scattered rot         parity (up to its recovery blocks per set), sibling, full
  file replaced         sibling, full (a remux keeps none of the original pieces)
  file deleted          sibling, full
A full snapshot is the store's (packs) or a read-only filesystem snapshot (btrfs).
"""

from dataclasses import asdict, dataclass, field

CLASSES = ("in_place_tag_edit", "resized_header", "tail_tag_appended", "tail_tag_removed", "scattered_rot",
           "file_replaced", "file_deleted")


@dataclass
class FileFacts:
    path: str
    size: int
    zoned: bool = False
    head_covered: bool = False  # head zone >= the metadata found at the head
    tail_kept: bool = False
    sibling: bool = False  # another torrent has this content on another inode
    parity_percent: float = 0.0  # a recovery set made from this content covers it
    parity_bytes: int = 0  # one damaged run that set repairs, anywhere in it
    parity_blocks: int = 0  # or this many damaged blocks, wherever they are
    head_extent: int | None = None  # metadata found at the head (zones kept it), None: unknown
    tail_extent: int | None = None


@dataclass
class TorrentFacts:
    torrent_id: str
    name: str
    files: list[FileFacts]
    full: bool = False  # a whole snapshot, not suspect
    full_suspect: bool = False
    fs_snapshot: bool = False  # a read-only filesystem snapshot holds every file as verified
    swarm: bool = True  # qBittorrent may find peers (never counted)


@dataclass
class Coverage:
    torrent_id: str
    name: str
    classes: dict = field(default_factory=dict)  # class -> {"survives": bool, "from": [tiers], "files_not": n}
    tiers: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def survived(self) -> list[str]:
        return [k for k, v in self.classes.items() if v["survives"]]


def _file_tiers(f: FileFacts, full: list[str]) -> dict[str, list[str]]:
    base = (["sibling"] if f.sibling else []) + full
    parity = f"parity {f.parity_percent:g}%" if f.parity_percent > 0 else None
    head_fits = parity is not None and f.head_extent is not None and f.head_extent <= f.parity_bytes
    tail_fits = parity is not None and f.tail_extent is not None and f.tail_extent <= f.parity_bytes
    return {
        "in_place_tag_edit": (["zones"] if f.zoned and f.head_covered else []) + ([parity] if head_fits else []) + base,
        "resized_header": (["shift+zones"] if f.zoned and f.head_covered else [])
        + (["shift+parity"] if head_fits else []) + base,
        "tail_tag_appended": ["shift"] + base,
        "tail_tag_removed": (["zones"] if f.tail_kept else []) + ([parity] if tail_fits else []) + base,
        "scattered_rot": ([parity] if parity else []) + base,
        "file_replaced": base,
        "file_deleted": base,
    }


def coverage(t: TorrentFacts) -> Coverage:
    out = Coverage(t.torrent_id, t.name)
    used: set[str] = set()
    full = (["full"] if t.full else []) + (["fs-snapshot"] if t.fs_snapshot else [])
    for cls in CLASSES:
        per_file = [_file_tiers(f, full)[cls] for f in t.files]
        not_ok = sum(1 for tiers in per_file if not tiers)
        names = sorted({tier for tiers in per_file for tier in tiers})
        out.classes[cls] = {"survives": bool(t.files) and not_ok == 0, "from": names, "files_not": not_ok,
                            **({"last_resort": "swarm"} if t.swarm and not_ok else {})}
        if cls == "scattered_rot" and t.files and all(f.parity_percent > 0 for f in t.files):
            out.classes[cls]["parity"] = {"blocks": min(f.parity_blocks for f in t.files),
                                          "run_bytes": min(f.parity_bytes for f in t.files)}
        if not not_ok:
            used.update(names)
    out.tiers = sorted(used)
    return out
