"""The index rebuilt from the packs themselves (restic's `repair index`): each pack's trailer lists
its chunks, so the index files can always be made again, e.g. on a new host reading a shared store
whose index a dying host never finished, or after index files were lost. Packs no index names are
indexed too (a host killed between uploading packs and writing their index); unreadable packs are
named, never indexed. Runs under the exclusive lock; the new index file is written before the old
ones are deleted (a crash leaves duplicates, never a gap)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.chunks import bad_chunks
from ..errors import StoreCorrupt
from .pack import read_trailer

log = logging.getLogger(__name__)


@dataclass
class RebuildResult:
    packs: int = 0
    chunks: int = 0
    bytes: int = 0
    new_packs: int = 0  # packs no index file named before
    unreadable: list = field(default_factory=list)  # [pack name, reason]
    replaced: int = 0  # index files the new one replaces
    dry_run: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def rebuild_index(store, *, dry_run: bool = False) -> RebuildResult:
    backend = store.backend
    out = RebuildResult(dry_run=dry_run)
    with backend.lock(store.lock_timeout):
        store.index.reload()
        known = set(store.index.packs())
        sizes = ({i["name"]: i["size"] for i in backend.listing("data")} if hasattr(backend, "listing")
                 else {n: None for n in backend.list("data")})
        bad = {pack for packs in bad_chunks(store.catalog).values() for pack in packs}
        packs: dict[str, list] = {}
        for name in sorted(sizes):
            pack_id = Path(name).name
            try:
                size = sizes[name] if sizes[name] is not None else backend.size(name)
                entries = read_trailer(backend, name, size)
            except StoreCorrupt as exc:
                out.unreadable.append([name, str(exc)])
                continue
            packs[pack_id] = [list(e) for e in entries]
            out.packs += 1
            out.chunks += len(entries)
            out.bytes += sum(e[2] for e in entries)
            out.new_packs += pack_id not in known
        old = backend.list("index")
        out.replaced = len(old)
        if dry_run:
            return out
        # packs holding a copy a check found bad go last: a good copy elsewhere is the one indexed
        ordered = dict(sorted(packs.items(), key=lambda kv: (kv[0] in bad, kv[0])))
        written = store.index.write(ordered)
        for name in old:
            if name != written:
                backend.delete(name)
        store.index.reload()
    log.info("%s: index rebuilt from %d packs (%d chunks, %d packs newly indexed, %d unreadable)", backend.where,
             out.packs, out.chunks, out.new_packs, len(out.unreadable))
    return out
