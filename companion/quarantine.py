"""The quarantine: the drifted bytes a heal kept (drift/heal.py writes it), listed, rebuilt, expired.

One entry per response to drift: a folder `<UTC stamp>-<torrent id[:12]>` under the home's
quarantine folder with `drift.json` ({torrent, name, created_at, snapshot, files: [{path, kind,
kept, file | link | ranges: [{offset, length, file}]}]}). A file changed in place keeps only its
changed ranges: `export` rebuilds the whole drifted file from the torrent's own bytes (a snapshot
of it, or the payload on disk when it still verifies against the torrent) with the kept ranges
laid over them, so the tagger's version is never lost.
"""

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .catalog import snapshots as snap_rows
from .catalog import views
from .errors import BadInput, DiskFull, Error, NotFound, is_disk_full

COPY_BYTES = 4 * 1024 * 1024


class QuarantineError(Error):
    """quarantine {}: {}"""


@dataclass
class Entry:
    id: str  # the folder's name
    folder: Path
    torrent_id: str
    name: str
    created_at: datetime
    snapshot_id: str | None
    files: list[dict]
    bytes: int = 0
    heal: dict = field(default_factory=dict)  # the heals row that kept it (outcome, source, snapshot)

    def to_json(self) -> dict:
        return {"id": self.id, "folder": str(self.folder), "torrent_id": self.torrent_id, "name": self.name,
                "created_at": self.created_at.isoformat(), "snapshot": self.snapshot_id, "bytes": self.bytes,
                "heal": self.heal, "files": [_file_json(f) for f in self.files]}


def _file_json(record: dict) -> dict:
    out = {k: record.get(k) for k in ("path", "kind", "kept", "pieces") if k in record}
    if "ranges" in record:
        out["ranges"] = [{"offset": r["offset"], "length": r["length"]} for r in record["ranges"]]
        out["kept_bytes"] = sum(r["length"] for r in record["ranges"])
    if "link" in record:
        out["link"] = record["link"]
    out["exportable"] = exportable(record)
    return out


def exportable(record: dict) -> bool:
    return "file" in record or "ranges" in record


def _stamp(name: str) -> datetime | None:
    try:
        return datetime.strptime(name.split("-", 1)[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def read_entry(folder: Path, catalog=None) -> Entry | None:
    """The entry in `folder`, or None when it is not one (no readable drift.json, no stamp)."""
    created = _stamp(folder.name)
    try:
        doc = json.loads((folder / "drift.json").read_text())
    except (OSError, ValueError):
        doc = None
    if created is None or not isinstance(doc, dict):
        return None
    if doc.get("created_at"):
        try:
            created = datetime.fromisoformat(doc["created_at"])
        except ValueError:
            pass
    entry = Entry(folder.name, folder, str(doc.get("torrent", "")), str(doc.get("name", "")), created,
                  doc.get("snapshot"), list(doc.get("files") or []), _size(folder))
    if catalog is not None:
        row = views.heal_of_quarantine(catalog, folder)
        if row is not None:
            entry.heal = {"id": row["id"], "outcome": row["outcome"], "source": row["source"],
                          "snapshot": row["snapshot_id"], "finished_at": row["finished_at"]}
            entry.snapshot_id = entry.snapshot_id or row["snapshot_id"]
    return entry


def entries(root: Path, catalog=None, torrent_id: str | None = None) -> list[Entry]:
    """Every entry under the quarantine folder, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.is_dir() and not child.is_symlink():
            entry = read_entry(child, catalog)
            if entry is not None and (torrent_id is None or entry.torrent_id == torrent_id):
                found.append(entry)
    return found


def find(root: Path, key: str, catalog=None) -> Entry:
    """An entry by its id (or a unique prefix of it), or by a torrent id prefix with one entry."""
    key = key.strip()
    if not key:
        raise BadInput("quarantine", "give an entry id (seedward quarantine list)")
    every = entries(root, catalog)
    hits = [e for e in every if e.id == key] or [e for e in every if e.id.startswith(key)]
    if not hits:
        hits = [e for e in every if e.torrent_id.startswith(key.lower())]
    if not hits:
        raise NotFound(f"no quarantine entry matches {key!r}")
    if len(hits) > 1:
        raise BadInput(key, f"matches {len(hits)} quarantine entries ({', '.join(e.id for e in hits[:4])}...);"
                       " give the entry id")
    return hits[0]


# export


@dataclass
class Exported:
    path: str  # the file's path in the torrent
    dest: str | None
    bytes: int = 0
    base: str = ""  # what the unchanged bytes came from: snapshot <id> | payload (verified) | kept whole
    note: str = ""


def export(entry: Entry, dest: Path, *, store=None, catalog=None, files: list[str] | None = None,
           dry_run: bool = False) -> list[Exported]:
    """Write the drifted files of `entry` under `dest` (as the torrent lays them out). A file kept
    as ranges is rebuilt over the torrent's own bytes, each proven: from a snapshot (the heal's,
    else the torrent's newest: every snapshot of a torrent holds the same verified bytes) or
    from the payload on disk when its pieces still verify against the torrent. Existing files
    under `dest` are never overwritten. dry_run: the files it would write (nothing is read or written)."""
    dest = Path(dest)
    records = entry.files
    if files:
        wanted = {f.strip("/") for f in files}
        records = [r for r in records if r["path"] in wanted or r["path"].split("/", 1)[-1] in wanted]
        missing = wanted - {r["path"] for r in records} - {r["path"].split("/", 1)[-1] for r in records}
        if missing:
            raise NotFound(f"quarantine entry {entry.id} has no file {sorted(missing)[0]!r}")
    for record in records:
        target = _inside(dest, record["path"])
        if os.path.lexists(target):
            raise BadInput(target, "exists; export writes only new files (choose an empty folder)")
    if dry_run:
        return [Exported(r["path"], str(_inside(dest, r["path"])) if exportable(r) or "link" in r else None, 0,
                         "", "" if exportable(r) or "link" in r else f"not kept: {r.get('kept', 'nothing')}")
                for r in records]
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".seedward-export-{entry.id}"
    staging.mkdir(exist_ok=True)
    out = []
    try:
        for record in records:
            out.append(_export_one(entry, record, dest, staging, store, catalog))
    except (DiskFull, OSError) as exc:
        if not (isinstance(exc, DiskFull) or is_disk_full(exc)):
            raise
        raise DiskFull(dest, exc.needed if isinstance(exc, DiskFull) else None) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made and not out:
            shutil.rmtree(dest, ignore_errors=True)  # nothing exported: the folder it made goes too
    return out


def _inside(root: Path, rel: str) -> Path:
    path = (root / rel).resolve() if not os.path.isabs(rel) else None
    if path is None or not str(path).startswith(str(root.resolve()) + os.sep):
        raise QuarantineError(rel, "a path outside the export folder")
    return root / rel


def _export_one(entry: Entry, record: dict, dest: Path, staging: Path, store, catalog) -> Exported:
    rel = record["path"]
    target = _inside(dest, rel)
    if "link" in record:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(record["link"], target)
        return Exported(rel, str(target), 0, "kept whole", "a symbolic link, recreated (not followed)")
    if "file" in record:
        source = _inside(entry.folder, record["file"])
        tmp = staging / "whole"
        _copy(source, tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, target)
        return Exported(rel, str(target), target.stat().st_size, "kept whole")
    if "ranges" not in record:
        return Exported(rel, None, 0, "", f"not kept: {record.get('kept', 'nothing')}")
    base_file, base = _base(entry, rel, staging, store, catalog)
    fd = os.open(base_file, os.O_WRONLY)
    try:
        for r in record["ranges"]:
            data = _inside(entry.folder, r["file"]).read_bytes()
            if len(data) != r["length"]:
                raise QuarantineError(entry.id, f"{r['file']} holds {len(data)} bytes, drift.json says {r['length']}")
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], r["offset"] + done)
        os.fsync(fd)
    finally:
        os.close(fd)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(base_file, target)
    return Exported(rel, str(target), target.stat().st_size, base)


def _copy(source: Path, tmp: Path) -> None:
    with open(source, "rb") as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, COPY_BYTES)
        out.flush()
        os.fsync(out.fileno())


def _base(entry: Entry, rel: str, staging: Path, store, catalog) -> tuple[Path, str]:
    """A staged copy of the torrent's own bytes of file `rel`, and where they came from."""
    why = []
    if store is not None:
        for snap_id, file_index in _snapshots_for(entry, rel, catalog or store.catalog):
            out = staging / "base" / snap_id[:12]
            try:
                store.restore(snap_id, out, files=[file_index])
            except (Error, OSError) as exc:
                if isinstance(exc, DiskFull) or is_disk_full(exc):
                    raise  # the export folder's disk: every other source needs the same room
                why.append(f"snapshot {snap_id[:12]}: {exc}")
                continue
            restored = [p for p in out.rglob("*") if p.is_file()]
            if len(restored) == 1:
                return restored[0], f"snapshot {snap_id[:12]}"
            why.append(f"snapshot {snap_id[:12]}: restored {len(restored)} files, not 1")
    if catalog is not None:
        staged, note = _from_payload(entry, rel, staging, catalog)
        if staged is not None:
            return staged, note
        why.append(note)
    raise QuarantineError(entry.id, f"cannot rebuild {rel}: no source of the torrent's own bytes"
                          + (f" ({'; '.join(why)})" if why else " (no snapshot, no catalog)"))


def _snapshots_for(entry: Entry, rel: str, catalog) -> list[tuple[str, int]]:
    """(snapshot, file index) of the snapshots holding file `rel`: the heal's first, then the
    torrent's others, newest first."""
    ids = [entry.snapshot_id] if entry.snapshot_id else []
    ids += [s["id"] for s in reversed(snap_rows.list_snapshots(catalog, entry.torrent_id)) if s["id"] not in ids]
    found = []
    for sid in ids:
        if snap_rows.get_snapshot(catalog, sid) is None:
            continue
        found += [(sid, r["file_index"]) for r in snap_rows.snapshot_files(catalog, sid) if r["path"] == rel][:1]
    return found


def _from_payload(entry: Entry, rel: str, staging: Path, catalog) -> tuple[Path | None, str]:
    """Copy the payload's file, then check the copy against the torrent's hashes."""
    from .drift.heal import bad_pieces
    from .locate import catalog_meta
    from .payload_io import resolve_payload_path

    try:
        meta, save_path = catalog_meta(catalog, entry.torrent_id)  # qBittorrent's renames applied
    except Error as exc:
        return None, f"the torrent's record cannot be read ({exc})"
    found = [f for f in meta.real_files if f.path == rel]
    if not found:
        return None, f"the torrent has no file {rel!r}"
    fe = found[0]
    tmp = staging / "payload"
    try:
        _copy(resolve_payload_path(save_path, fe), tmp)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(staging, fe.size) from exc
        return None, f"the payload's {rel} cannot be read ({exc.strerror or exc})"
    pieces = list(meta.file_pieces(fe))
    if os.path.getsize(tmp) != fe.size or bad_pieces(meta, save_path, pieces, paths={fe.index: tmp}):
        return None, f"the payload's {rel} no longer verifies against the torrent"
    return tmp, "payload (verified against the torrent)"


# expiry


@dataclass
class Purged:
    removed: list[Entry]
    kept: int
    bytes_freed: int
    dry_run: bool

    def to_json(self) -> dict:
        return {"removed": [e.id for e in self.removed], "kept": self.kept, "bytes_freed": self.bytes_freed,
                "dry_run": self.dry_run}


def _settled(found: list[Entry]) -> list[Entry]:
    """Oldest first, without the entries of a heal still running."""
    return [e for e in sorted(found, key=lambda e: (e.created_at, e.id)) if e.heal.get("outcome") != "running"]


def older_than(found: list[Entry], now: datetime, days: float) -> list[Entry]:
    return [e for e in _settled(found) if now - e.created_at > timedelta(days=days)]


def expired(found: list[Entry], now: datetime, keep_days: float, max_bytes: int = 0) -> list[Entry]:
    """Which entries an expiry removes (pure): those older than keep_days (0: none by age), then
    the oldest until the rest fit in max_bytes (0: no cap). Entries of a heal still running stay."""
    out = older_than(found, now, keep_days) if keep_days > 0 else []
    if max_bytes > 0:
        total = sum(e.bytes for e in found) - sum(e.bytes for e in out)
        for e in _settled(found):
            if total <= max_bytes:
                break
            if e not in out:
                out.append(e)
                total -= e.bytes
    return out


def purge(root: Path, remove: list[Entry], *, dry_run: bool = False) -> Purged:
    """Delete these entries' folders (only folders that are quarantine entries under root)."""
    root = Path(root).resolve()
    before = len(entries(root))
    for e in remove:
        folder = Path(e.folder)
        if folder.resolve().parent != root or read_entry(folder) is None:
            raise QuarantineError(folder, "not an entry of the quarantine folder; left alone")
    for e in remove:
        if not dry_run:
            shutil.rmtree(e.folder)
    return Purged(remove, before - len(remove), sum(e.bytes for e in remove), dry_run)


def expire(root: Path, catalog, keep_days: float, max_bytes: int = 0, *, now: datetime | None = None,
           dry_run: bool = False) -> Purged:
    """The scheduled expiry: remove what `expired` says."""
    found = entries(root, catalog)
    now = now or datetime.now(timezone.utc)
    return purge(root, expired(found, now, keep_days, max_bytes), dry_run=dry_run)

