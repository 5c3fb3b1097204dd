"""`archive restore`: download, check every volume's SHA-256, PAR2-repair what is damaged, decrypt,
unpack, and check every member's SHA-256 against the set manifest and the catalog.

What a restore holds, under `--to`: `payload/<torrent id>/...` (laid out as the torrent lays it out,
so `payload/<id>` is the torrent's save path), `torrents/<id>.torrent`, `manifests/...` (with
qBittorrent's state under `manifests/qbittorrent/`), `catalog/catalog.sqlite` and `set.json`.
"""

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, DiskFull, is_disk_full
from ..job import sha256_file
from . import par2, sevenzip_tool
from .errors import ArchiveDamaged, ArchiveError, IncompleteSet, SetNotFound, WrongPassphrase
from .remote import SET_MANIFEST, Remote
from .setmanifest import INNER_NAME, archives_of
from .sevenzip import extract_archive

log = logging.getLogger(__name__)

HASH_WORKERS = 2


@dataclass
class RestoreResult:
    set_id: str
    tier: str
    to: str
    remote: str = ""
    files: int = 0
    bytes: int = 0
    damaged_volumes: list[str] = field(default_factory=list)
    repaired_volumes: list[str] = field(default_factory=list)
    checked_against_catalog: int = 0
    torrents: list[str] = field(default_factory=list)
    torrent_files: int = 0  # .torrent files restored
    reader: str = ""  # 7z | py7zr
    drill: list = field(default_factory=list)
    qbittorrent: dict | None = None  # what --into-qbittorrent did
    seconds: dict = field(default_factory=dict)  # wall-clock seconds per phase

    def to_json(self) -> dict:
        return dict(self.__dict__)


def find_set(remote: Remote, set_ref: str):
    sets = [s for s in remote.list_sets() if s.set_id.startswith(set_ref)]
    if not sets:
        raise SetNotFound(set_ref, f"on {remote.dest}")
    if len({s.set_id for s in sets}) > 1:
        raise SetNotFound(set_ref, f"on {remote.dest}: it matches {len(sets)} sets, give more of its id")
    complete = [s for s in sets if s.complete]
    if not complete:
        raise IncompleteSet(sets[0].set_id, remote.dest)
    return complete[0]


def check_volumes(folder: Path, doc: dict, workers: int = HASH_WORKERS) -> list[int]:
    """Indices of volumes missing or not matching their checksum in the set manifest (xxh3-128;
    SHA-256 in format 1 sets)."""
    def bad(iv) -> bool:
        v = doc["volumes"][iv]
        path = folder / v["name"]
        if not path.is_file() or path.stat().st_size != v["size"]:
            return True
        if sevenzip_tool.DIGEST in v:
            return sevenzip_tool.volume_digest(path) != v[sevenzip_tool.DIGEST]
        return sha256_file(path) != v["sha256"]

    with ThreadPoolExecutor(workers, thread_name_prefix="volume-check") as pool:
        flags = list(pool.map(bad, range(len(doc["volumes"]))))
    return [i for i, b in enumerate(flags) if b]


def repair_volumes(folder: Path, doc: dict, bad: list[int]) -> list[str]:
    """Iterative PAR2 repair of the damaged volumes; returns the names still damaged."""
    names = [v["name"] for v in doc["volumes"]]
    sets = doc["par2"]["sets"]
    par2.repair(folder, [s["name"] for s in sets], [s["volumes"] for s in sets], set(bad))
    return [names[i] for i in check_volumes(folder, doc)]  # trust the hashes, not par2's exit code


def unpack(folder: Path, doc: dict, passphrase: str, dest: Path, exe: str | None) -> None:
    for archive in archives_of(doc):
        names = archive["volumes"]
        if exe:
            sevenzip_tool.extract(exe, folder, names[0], passphrase, dest, doc["set_id"])
            continue
        try:
            extract_archive(folder, names, archive.get("volume_size") or doc["volume_size"], passphrase, dest)
        except FileNotFoundError as exc:  # a lost volume: the volume check finds it, PAR2 rebuilds it
            raise ArchiveError(archive["name"], f"volume {Path(exc.filename or '?').name} is missing") from exc
        except (OSError, MemoryError):
            raise
        except Exception as exc:
            # the volumes match their SHA-256, so what fails to decrypt was never the data: it is the key
            raise WrongPassphrase(doc["set_id"]) from exc


def verify_members(dest: Path, doc: dict, inner: dict, catalog) -> int:
    """Every member against the inner manifest, the public contents list and the catalog. Returns how
    many members the catalog also vouched for."""
    public = sorted((c["sha256"], c["size"]) for c in doc["contents"])
    if sorted((m["sha256"], m["size"]) for m in inner["members"]) != public:
        raise ArchiveDamaged(doc["set_id"], "the archive's inner manifest does not match the set manifest")

    def digest(m: dict) -> str | None:
        path = dest / m["path"]
        return sha256_file(path) if path.is_file() else None

    members = sorted(inner["members"], key=lambda m: m["size"], reverse=True)
    with ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="member-check") as pool:
        digests = list(pool.map(digest, members))
    vouched = 0
    known = _CatalogHashes(catalog) if catalog is not None else None
    for m, got in zip(members, digests):
        if got != m["sha256"]:
            raise ArchiveDamaged(doc["set_id"], f"member {m['path']} does not match its SHA-256")
        if known is not None and m.get("snapshot_id"):
            expected = known.sha256(m)
            if expected is not None:
                if expected != m["sha256"]:
                    raise ArchiveDamaged(doc["set_id"], f"member {m['path']} differs from the catalog's SHA-256")
                vouched += 1
    return vouched


class _CatalogHashes:
    """The catalog's SHA-256 of a member: its snapshot's record, else the torrent's file row (each
    snapshot and torrent read once)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.snapshots: dict[str, dict[str, str]] = {}
        self.torrents: dict[str, dict[str, str]] = {}

    def sha256(self, member: dict) -> str | None:
        from ..catalog.snapshots import snapshot_files

        rel = member["path"].split("/", 2)[2]  # payload/<torrent id>/<path as the torrent lays it out>
        sid, tid = member["snapshot_id"], member["torrent_id"]
        if sid not in self.snapshots:
            self.snapshots[sid] = {r["path"]: r["sha256"] for r in snapshot_files(self.catalog, sid)}
        if rel in self.snapshots[sid]:
            return self.snapshots[sid][rel]
        if tid not in self.torrents:
            self.torrents[tid] = {r["path"]: r["sha256"] for r in self.catalog.get_files(tid)}
        return self.torrents[tid].get(rel)


def restore_set(*, remote: Remote, set_ref: str, to: Path, passphrase: str, work: Path, catalog=None,
                drill: bool = False, drill_timeout: float = 600.0, sevenzip: str = "auto") -> RestoreResult:
    """A set on a local path is read in place (never written: a damaged set is copied out first and
    repaired there); others are downloaded, volumes first (PAR2 files only when a volume is damaged).
    The volumes' SHA-256 is checked while 7z unpacks them: if one turns out damaged, what was
    unpacked is thrown away and unpacked again after the repair."""
    to = Path(to)
    if to.exists() and any(to.iterdir()):
        raise BadInput(to, "restore target exists and is not empty")
    exe = sevenzip_tool.binary(sevenzip)
    found = find_set(remote, set_ref)
    scratch = work / found.set_id
    shutil.rmtree(scratch, ignore_errors=True)
    partial = to.parent / f".{to.name}.seedward-partial"
    shutil.rmtree(partial, ignore_errors=True)
    t = time.perf_counter()
    doc = None
    try:
        doc = remote.read_manifest(found.tier, found.set_id)
        result = RestoreResult(found.set_id, doc["tier"], str(to), remote.dest, reader="7z" if exe else "py7zr")
        names = [v["name"] for v in doc["volumes"]]
        folder = remote.folder(found.tier, found.set_id)
        if folder is None:
            folder = scratch
            remote.download(found.tier, found.set_id, folder, names)
        t = _lap(result, "download", t)
        with ThreadPoolExecutor(1, thread_name_prefix="volume-check") as pool:
            checking = pool.submit(check_volumes, folder, doc, 1)  # one thread: 7z has the other core
            try:
                unpack(folder, doc, passphrase, partial, exe)
                failed = None
            except (WrongPassphrase, ArchiveError) as exc:
                failed = exc
            bad = checking.result()
        t = _lap(result, "7z+check", t)
        if bad:
            result.damaged_volumes = [names[i] for i in bad]
            shutil.rmtree(partial, ignore_errors=True)
            if folder != scratch:  # never repair the remote's own files
                scratch.mkdir(parents=True)
                for n in names:
                    if (folder / n).is_file():
                        shutil.copyfile(folder / n, scratch / n)
                folder = scratch
            remote.download(found.tier, found.set_id, folder, [f["name"] for f in doc["par2"]["files"]])
            left = repair_volumes(folder, doc, bad)
            t = _lap(result, "repair", t)
            if left:
                g = doc["protection"]
                raise ArchiveDamaged(found.set_id, f"{len(left)} of {len(names)} volumes could not be repaired "
                                     f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''}); "
                                     f"the set repairs {g['anywhere_volumes']} lost volumes anywhere, "
                                     f"{g['burst_volumes']} in a row, or {g['anywhere_blocks']} damaged blocks")
            result.repaired_volumes = result.damaged_volumes
            unpack(folder, doc, passphrase, partial, exe)
            t = _lap(result, "7z", t)
        elif failed is not None:
            raise failed
        inner = json.loads((partial / INNER_NAME).read_text())
        result.checked_against_catalog = verify_members(partial, doc, inner, catalog)
        t = _lap(result, "verify", t)
        (partial / INNER_NAME).rename(partial / SET_MANIFEST)
        result.files = len(inner["members"])
        result.bytes = sum(m["size"] for m in inner["members"])
        result.torrents = sorted({m["torrent_id"] for m in inner["members"] if m.get("torrent_id")})
        result.torrent_files = sum(1 for m in inner["members"] if m["path"].startswith("torrents/"))
        if to.exists():
            to.rmdir()
        partial.rename(to)
    except (DiskFull, OSError) as exc:
        if not (isinstance(exc, DiskFull) or is_disk_full(exc)):
            raise
        where = exc.path if isinstance(exc, DiskFull) and not exc.path.startswith(str(partial)) else to.parent
        need = sum(c["size"] for c in doc["contents"]) if doc else None  # what the set unpacks to
        raise DiskFull(where, need) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
    if drill:
        result.drill = drill_restored(to, result.torrents, drill_timeout)
    return result


def _lap(result: RestoreResult, name: str, since: float) -> float:
    now = time.perf_counter()
    result.seconds[name] = round(now - since, 3)
    log.info("archive restore %s: %s done in %.1fs", result.set_id, name, now - since)
    return now


def drill_restored(to: Path, torrent_ids: list[str], timeout: float) -> list[dict]:
    """Hand each restored payload to an isolated libtorrent recheck (a drill's final proof)."""
    from ..ltsession import recheck

    out = []
    for tid in torrent_ids:
        torrent = to / "torrents" / f"{tid}.torrent"
        if not torrent.is_file():
            out.append({"torrent_id": tid, "ok": None, "why": "the set holds no .torrent for it"})
            continue
        bad = recheck(torrent.read_bytes(), str(to / "payload" / tid), timeout)
        out.append({"torrent_id": tid, "ok": not bad, "bad_pieces": bad[:50]})
    return out
