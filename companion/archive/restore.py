"""`archive restore`: download, check every volume's SHA-256, PAR2-repair what is damaged, decrypt,
unpack, and check every member's SHA-256 against the set manifest and the catalog."""

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from . import par2
from .errors import ArchiveDamaged, IncompleteSet, SetNotFound, WrongPassphrase
from .remote import SET_MANIFEST, Remote
from .setmanifest import INNER_NAME
from .sevenzip import extract_archive, sha256_file

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    set_id: str
    tier: str
    to: str
    files: int = 0
    bytes: int = 0
    damaged_volumes: list[str] = field(default_factory=list)
    repaired_volumes: list[str] = field(default_factory=list)
    checked_against_catalog: int = 0
    torrents: list[str] = field(default_factory=list)
    drill: list = field(default_factory=list)
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


def check_volumes(folder: Path, doc: dict) -> list[int]:
    """Indices of volumes missing or not matching their SHA-256 in the set manifest."""
    bad = []
    for i, v in enumerate(doc["volumes"]):
        path = folder / v["name"]
        if not path.is_file() or path.stat().st_size != v["size"] or sha256_file(path) != v["sha256"]:
            bad.append(i)
    return bad


def repair_volumes(folder: Path, doc: dict) -> tuple[list[str], list[str]]:
    """(damaged, still damaged) volume names after iterative PAR2 repair."""
    bad = check_volumes(folder, doc)
    names = [v["name"] for v in doc["volumes"]]
    if not bad:
        return [], []
    sets = doc["par2"]["sets"]
    par2.repair(folder, [s["name"] for s in sets], [s["volumes"] for s in sets], set(bad))
    left = check_volumes(folder, doc)  # trust the hashes, not par2's exit code
    return [names[i] for i in bad], [names[i] for i in left]


def unpack(folder: Path, doc: dict, passphrase: str, dest: Path) -> None:
    names = [v["name"] for v in doc["volumes"]]
    try:
        extract_archive(folder, names, doc["volume_size"], passphrase, dest)
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
    vouched = 0
    for m in inner["members"]:
        path = dest / m["path"]
        if not path.is_file() or sha256_file(path) != m["sha256"]:
            raise ArchiveDamaged(doc["set_id"], f"member {m['path']} does not match its SHA-256")
        if catalog is not None and m.get("snapshot_id"):
            known = _catalog_sha256(catalog, m)
            if known is not None:
                if known != m["sha256"]:
                    raise ArchiveDamaged(doc["set_id"], f"member {m['path']} differs from the catalog's SHA-256")
                vouched += 1
    return vouched


def _catalog_sha256(catalog, member: dict) -> str | None:
    from ..catalog.snapshots import snapshot_files

    rel = member["path"].split("/", 2)[2]  # payload/<torrent id>/<path as the torrent lays it out>
    for row in snapshot_files(catalog, member["snapshot_id"]):
        if row["path"] == rel:
            return row["sha256"]
    for row in catalog.get_files(member["torrent_id"]):
        if row["path"] == rel:
            return row["sha256"]
    return None


def restore_set(*, remote: Remote, set_ref: str, to: Path, passphrase: str, work: Path, catalog=None,
                drill: bool = False, drill_timeout: float = 600.0) -> RestoreResult:
    to = Path(to)
    if to.exists() and any(to.iterdir()):
        raise BadInput(to, "restore target exists and is not empty")
    found = find_set(remote, set_ref)
    folder = work / found.set_id
    shutil.rmtree(folder, ignore_errors=True)
    partial = to.parent / f".{to.name}.seedward-partial"
    shutil.rmtree(partial, ignore_errors=True)
    t = time.perf_counter()
    try:
        remote.download_set(found.tier, found.set_id, folder)
        doc = json.loads((folder / SET_MANIFEST).read_text())
        result = RestoreResult(found.set_id, doc["tier"], str(to))
        t = _lap(result, "download", t)
        damaged, left = repair_volumes(folder, doc)
        t = _lap(result, "check+repair", t)
        result.damaged_volumes = damaged
        if left:
            raise ArchiveDamaged(found.set_id, f"{len(left)} of {len(doc['volumes'])} volumes could not be repaired "
                                 f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''}); "
                                 f"the set guarantees {doc['protection']['anywhere_volumes']} anywhere, "
                                 f"{doc['protection']['burst_volumes']} in a row")
        result.repaired_volumes = damaged
        unpack(folder, doc, passphrase, partial)
        t = _lap(result, "7z", t)
        inner = json.loads((partial / INNER_NAME).read_text())
        result.checked_against_catalog = verify_members(partial, doc, inner, catalog)
        t = _lap(result, "verify", t)
        (partial / INNER_NAME).rename(partial / "set.json")
        result.files = len(inner["members"])
        result.bytes = sum(m["size"] for m in inner["members"])
        result.torrents = sorted({m["torrent_id"] for m in inner["members"] if m.get("torrent_id")})
        if to.exists():
            to.rmdir()
        partial.rename(to)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
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
            out.append({"torrent_id": tid, "ok": None, "why": "no .torrent in the set"})
            continue
        bad = recheck(torrent.read_bytes(), str(to / "payload" / tid), timeout)
        out.append({"torrent_id": tid, "ok": not bad, "bad_pieces": bad[:50]})
    return out
