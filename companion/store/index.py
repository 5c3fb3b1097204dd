"""The index: chunk id -> (pack, offset, length, width), kept as immutable index files.

Each snapshot that adds packs writes one new index file after its packs are published;
the in-memory index is the union of all of them. Prune and repair write a consolidated file
before deleting the ones it replaces, so a crash leaves duplicates at worst, never gaps. A file
may say it `replaces` a chunk's copy in another pack (a snapshot stored again a chunk a check
found bad there): its entry then wins whatever order the files are read in.
"""

import json
import secrets
import threading
from dataclasses import dataclass

from ..errors import StoreCorrupt
from .backend import Backend


@dataclass(frozen=True)
class IndexEntry:
    pack: str  # pack id
    offset: int
    length: int
    width: int  # merkle tree width the chunk id was computed with


class Index:
    def __init__(self, backend: Backend):
        self.backend = backend
        self.entries: dict[str, IndexEntry] = {}
        self.files: dict[str, set[str]] = {}  # index file -> pack ids it names
        self.lock = threading.Lock()

    def reload(self) -> None:
        """Read index files not seen yet (another process may have written some). Readers see
        the old or the new mapping, never a half-built one."""
        names = self.backend.list("index")
        with self.lock:
            fresh = bool(set(self.files) - set(names))  # prune replaced files: start over
            entries = {} if fresh else dict(self.entries)
            files = {} if fresh else dict(self.files)
            overrides = []
            for name in names:
                if name in files:
                    continue
                try:
                    doc = json.loads(self.backend.get_bytes(name))
                    packs = doc["packs"]
                    replaces = doc.get("replaces") or {}
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise StoreCorrupt(self.backend.where, f"index file {name} is unreadable") from exc
                overrides += _apply(entries, packs, replaces)
                files[name] = set(packs)
            for cid, old_pack, entry in overrides:
                if entries[cid].pack == old_pack:
                    entries[cid] = entry
            self.entries, self.files = entries, files

    def get(self, chunk_id: str) -> IndexEntry | None:
        return self.entries.get(chunk_id)

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self.entries

    def packs(self) -> dict[str, list[tuple[str, IndexEntry]]]:
        out: dict[str, list] = {}
        for cid, e in self.entries.items():
            out.setdefault(e.pack, []).append((cid, e))
        return out

    def write(self, packs: dict[str, list], replaces: dict[str, str] | None = None) -> str | None:
        """Persist a new index file naming `packs` (pack id -> [[id, offset, length, width]]).
        replaces: chunk id -> the pack whose (bad) copy these new entries stand in for."""
        if not packs:
            return None
        name = f"index/{secrets.token_hex(32)}.json"
        doc = {"version": 1, "packs": packs, **({"replaces": replaces} if replaces else {})}
        self.backend.put_bytes(name, json.dumps(doc, separators=(",", ":")).encode())
        with self.lock:
            entries = dict(self.entries)
            for cid, old_pack, entry in _apply(entries, packs, replaces or {}):
                if entries[cid].pack == old_pack:
                    entries[cid] = entry
            self.entries = entries
            self.files = {**self.files, name: set(packs)}
        return name


def _apply(entries: dict, packs: dict, replaces: dict) -> list:
    """Add one index file's entries (the first seen wins); returns the (chunk id, old pack,
    entry) overrides it asks for."""
    out = []
    for pack_id, chunks in packs.items():
        for cid, offset, length, width in chunks:
            entry = IndexEntry(pack_id, offset, length, width)
            entries.setdefault(cid, entry)
            if cid in replaces:
                out.append((cid, replaces[cid], entry))
    return out
