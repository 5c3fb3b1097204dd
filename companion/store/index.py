"""The index: chunk id -> (pack, offset, length, width), kept as immutable index files.

Each snapshot that adds packs writes one new index file after its packs are published;
the in-memory index is the union of all of them. Prune writes a consolidated file before
deleting the ones it replaces, so a crash leaves duplicates at worst, never gaps.
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
            for name in names:
                if name in files:
                    continue
                try:
                    doc = json.loads(self.backend.get_bytes(name))
                    packs = doc["packs"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise StoreCorrupt(self.backend.where, f"index file {name} is unreadable") from exc
                for pack_id, chunks in packs.items():
                    for cid, offset, length, width in chunks:
                        entries.setdefault(cid, IndexEntry(pack_id, offset, length, width))
                files[name] = set(packs)
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

    def write(self, packs: dict[str, list]) -> str | None:
        """Persist a new index file naming `packs` (pack id -> [[id, offset, length, width]])."""
        if not packs:
            return None
        name = f"index/{secrets.token_hex(32)}.json"
        self.backend.put_bytes(name, json.dumps({"version": 1, "packs": packs}, separators=(",", ":")).encode())
        with self.lock:
            entries = dict(self.entries)
            for pack_id, chunks in packs.items():
                for cid, offset, length, width in chunks:
                    entries.setdefault(cid, IndexEntry(pack_id, offset, length, width))
            self.entries = entries
            self.files = {**self.files, name: set(packs)}
        return name
