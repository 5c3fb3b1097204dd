"""qBittorrent's own state, backed up and restored (`seedward qbt backup|restore`, `archive restore
--into-qbittorrent`): categories with their save paths, tags, and per torrent its save path,
category, tags, options (speed and share limits, automatic management, sequential download,
first/last piece priority, super seeding, stopped), file priorities and renamed files, and its
.torrent.

Kept in the manifests repo (git history: every backup that changed something is a commit):
`qbittorrent/state.json` (categories, tags, the torrent list) and `qbittorrent/torrents/<hash>.json`
(one per torrent, its .torrent base64-encoded); with several qBittorrent instances each one has
its own folder (`folder`: `qbittorrent` for the first, `qbittorrent.<name>` for the others). Archive sets carry them among the manifests, so a set
restored under DIR holds them in DIR/manifests/qbittorrent/.

A restore adds what qBittorrent lacks (categories, tags, torrents; what it has is left alone) and
skips qBittorrent's hash check only for a payload seedward has verified against the torrent's own
piece hashes just before adding it; a payload that is missing or does not verify is added stopped
(missing) or checked by qBittorrent.
"""

import base64
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BadInput, Error
from .scan import Scanner
from .torrent import load_torrent

log = logging.getLogger(__name__)

ADDED_SECONDS = 60.0  # qBittorrent answers an add before the torrent is in its list: wait this long for it

FOLDER = "qbittorrent"
STATE = f"{FOLDER}/state.json"
OPTIONS = ("auto_tmm", "up_limit", "dl_limit", "ratio_limit", "seeding_time_limit", "seq_dl", "f_l_piece_prio",
           "super_seeding", "download_path")


def torrent_relpath(torrent_hash: str, folder: str = FOLDER) -> str:
    return f"{folder}/torrents/{torrent_hash}.json"


def folder_for(instance: str, first: bool) -> str:
    """An instance's folder in the manifests repo (the first keeps the one-instance layout)."""
    return FOLDER if first else f"{FOLDER}.{instance}"


def _tags(value) -> list[str]:
    if isinstance(value, str):
        return sorted(t.strip() for t in value.split(",") if t.strip())
    return sorted(value or [])


def torrent_document(qbt, t: dict, kept_torrents: Path | None = None) -> dict:
    """One torrent's state: where it is, how qBittorrent runs it, and its .torrent."""
    h = t["hash"]
    kept = kept_torrents / f"{h}.torrent" if kept_torrents else None
    raw = kept.read_bytes() if kept is not None and kept.is_file() else qbt.export(h)
    meta = load_torrent(raw)
    # qBittorrent numbers files without the pad files: its n-th file is the torrent's n-th real one
    files = sorted(qbt.files(h), key=lambda f: f["index"])
    paths = [e.path for e in sorted(meta.real_files, key=lambda e: e.index)]
    renamed = {p: f["name"] for p, f in zip(paths, files) if f["name"] != p} if len(paths) == len(files) else {}
    priorities = [f.get("priority", 1) for f in files]
    return {
        "hash": h, "name": t.get("name", meta.name), "save_path": t.get("save_path", ""),
        "category": t.get("category", "") or "", "tags": _tags(t.get("tags")),
        "stopped": t.get("state", "").startswith("stopped"),
        "options": {k: t[k] for k in OPTIONS if k in t},
        "priorities": priorities if any(p != 1 for p in priorities) else None,
        "renamed": renamed,
        "torrent_sha256": hashlib.sha256(raw).hexdigest(),
        "torrent": base64.b64encode(raw).decode(),
    }


def bare_document(torrent_hash: str, raw: bytes) -> dict:
    """A torrent's state when only its .torrent is known: no category, tags or options."""
    return {"hash": torrent_hash, "name": load_torrent(raw).name, "save_path": "", "category": "", "tags": [],
            "stopped": False, "options": {}, "priorities": None, "renamed": {},
            "torrent_sha256": hashlib.sha256(raw).hexdigest(), "torrent": base64.b64encode(raw).decode()}


@dataclass
class BackupResult:
    torrents: int
    categories: int
    tags: int
    changed: list[str] = field(default_factory=list)  # manifest paths written or removed
    commit: str | None = None
    dry_run: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def backup(qbt, manifests, kept_torrents: Path | None = None, dry_run: bool = False,
           folder: str = FOLDER) -> BackupResult:
    """Write qBittorrent's state into the manifests repo (only what changed; one commit)."""
    categories = {name: {"save_path": c.get("savePath", "") or ""} for name, c in sorted(qbt.categories().items())}
    tags = sorted(qbt.tags())
    torrents = sorted(qbt.torrents(), key=lambda t: t["hash"])
    docs: dict[str, dict | None] = {
        f"{folder}/state.json": {"format": 1, "qbittorrent": qbt.version, "categories": categories, "tags": tags,
                "torrents": [t["hash"] for t in torrents]},
    }
    for t in torrents:
        docs[torrent_relpath(t["hash"], folder)] = torrent_document(qbt, t, kept_torrents)
    kept = manifests.path / folder / "torrents"
    have = {p.stem for p in kept.glob("*.json")} if kept.is_dir() else set()
    for gone in sorted(have - {t["hash"] for t in torrents}):
        docs[torrent_relpath(gone, folder)] = None
    changed = {rel: doc for rel, doc in docs.items() if _differs(manifests.path / rel, doc)}
    result = BackupResult(len(torrents), len(categories), len(tags), sorted(changed), dry_run=dry_run)
    if changed and not dry_run:
        result.commit = manifests.write_many(changed, f"qbittorrent state: {len(torrents)} torrents, "
                                             f"{len(categories)} categories, {len(tags)} tags")
    return result


def _differs(path: Path, doc: dict | None) -> bool:
    if doc is None:
        return path.exists()
    data = (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    try:
        return path.read_bytes() != data
    except OSError:
        return True


def load(root: Path, folder: str = FOLDER) -> dict:
    """A backup from a manifests tree (the repo's folder, or DIR/manifests of a restored set):
    {"categories", "tags", "torrents": {hash: document}}."""
    state_file = root / folder / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except OSError as exc:
        raise BadInput(state_file, f"no qBittorrent state backup here ({exc.strerror}); run `seedward qbt backup`") from exc
    except ValueError as exc:
        raise BadInput(state_file, "not valid JSON") from exc
    torrents = {}
    for h in state.get("torrents", []):
        path = root / torrent_relpath(h, folder)
        try:
            torrents[h] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(path, f"unreadable torrent state: {exc}") from exc
    return {"categories": state.get("categories", {}), "tags": state.get("tags", []), "torrents": torrents,
            "qbittorrent": state.get("qbittorrent", "")}


class RestoreFailed(Error):
    """qBittorrent state restore: {}"""


@dataclass
class RestoreReport:
    dry_run: bool
    categories_created: list[str] = field(default_factory=list)
    tags_created: list[str] = field(default_factory=list)
    added: list[dict] = field(default_factory=list)  # hash, name, save_path, checked_by (seedward|qbittorrent), stopped
    present: list[str] = field(default_factory=list)  # already in qBittorrent: left alone
    failed: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def restore(qbt, state: dict, *, dry_run: bool = False, only: list[str] | None = None,
            save_paths: dict[str, str] | None = None, verified: set[str] | None = None) -> RestoreReport:
    """Re-add what qBittorrent lacks. only: these torrent hashes; save_paths: hash -> a save path to
    use instead of the recorded one (a restored set's payload/<hash>); verified: hashes whose payload
    seedward has just checked against the torrent's piece hashes (no second scan)."""
    report = RestoreReport(dry_run)
    have_categories = qbt.categories()
    for name, c in sorted(state["categories"].items()):
        if name not in have_categories:
            report.categories_created.append(name)
            if not dry_run:
                qbt.create_category(name, c.get("save_path", ""))
    have_tags = set(qbt.tags())
    wanted_tags = set(state["tags"]) | {t for d in state["torrents"].values() for t in d.get("tags", [])}
    new_tags = sorted(wanted_tags - have_tags)
    report.tags_created = new_tags
    if new_tags and not dry_run:
        qbt.create_tags(new_tags)
    present = {t["hash"] for t in qbt.torrents()}
    for h, doc in sorted(state["torrents"].items()):
        if only is not None and h not in only:
            continue
        if h in present:
            report.present.append(h)
            continue
        save_path = (save_paths or {}).get(h, doc["save_path"])
        try:
            report.added.append(_add(qbt, doc, save_path, state, dry_run, h in (verified or set())))
        except (Error, ValueError) as exc:
            report.failed.append({"hash": h, "name": doc.get("name", ""), "error": str(exc)})
    return report


def _add(qbt, doc: dict, save_path: str, state: dict, dry_run: bool, verified: bool) -> dict:
    raw = base64.b64decode(doc["torrent"])
    if hashlib.sha256(raw).hexdigest() != doc["torrent_sha256"]:
        raise ValueError("its .torrent does not match its recorded SHA-256")
    meta = load_torrent(raw)
    layout = Path(save_path)
    on_disk = _payload_present(meta, layout, doc.get("renamed") or {})
    item = {"hash": doc["hash"], "name": doc.get("name", meta.name), "save_path": save_path,
            "checked_by": "", "stopped": bool(doc.get("stopped"))}
    if not on_disk:
        item.update(checked_by="qbittorrent", stopped=True, note="payload missing: added stopped")
    elif verified:
        item["checked_by"] = "seedward"
    elif dry_run:
        item["checked_by"] = "seedward (would verify)"
    else:
        ok = not doc.get("renamed") and Scanner().full_scan(meta, layout).ok
        item["checked_by"] = "seedward" if ok else "qbittorrent"
    if dry_run:
        return item
    opts = doc.get("options", {})
    extra = {k: v for k, v in (
        ("upload_limit", opts.get("up_limit")), ("download_limit", opts.get("dl_limit")),
        ("ratio_limit", opts.get("ratio_limit")), ("seeding_time_limit", opts.get("seeding_time_limit")),
        ("is_sequential_download", opts.get("seq_dl")), ("is_first_last_piece_priority", opts.get("f_l_piece_prio")),
        ("download_path", opts.get("download_path") or None)) if v is not None}
    qbt.add_torrent(raw, save_path, category=doc.get("category") or None, tags=doc.get("tags", []),
                    stopped=True, skip_checking=item["checked_by"] == "seedward", content_layout="Original",
                    use_auto_torrent_management=False, **extra)
    h = doc["hash"]
    _until_listed(qbt, h)
    for old, new in sorted((doc.get("renamed") or {}).items()):
        qbt.rename_path(h, old, new)
    if doc.get("priorities"):
        for prio in sorted(set(doc["priorities"])):
            if prio != 1:
                qbt.file_priority(h, [i for i, p in enumerate(doc["priorities"]) if p == prio], prio)
    if opts.get("super_seeding"):
        qbt.set_super_seeding(h, True)
    category = state["categories"].get(doc.get("category") or "", {})
    if opts.get("auto_tmm") and category.get("save_path", "").rstrip("/") == save_path.rstrip("/"):
        qbt.set_auto_management(h, True)  # only where it moves nothing
    elif opts.get("auto_tmm"):
        item["note"] = "automatic management left off (the category's path is not where the payload is)"
    if item["checked_by"] == "qbittorrent" and on_disk:
        qbt.recheck(h)
    if not item["stopped"]:
        qbt.start(h)
    return item


def _until_listed(qbt, h: str) -> None:
    """qBittorrent's "Ok." to an add means taken, not yet added (under load, its list lacked the
    torrent for a while): the per-torrent calls that follow wait for it to be listed."""
    deadline, pause = time.monotonic() + ADDED_SECONDS, 0.05
    while qbt.torrent(h) is None:
        if time.monotonic() > deadline:
            raise Error(f"qBittorrent took {h} but does not list it after {ADDED_SECONDS:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _payload_present(meta, save_path: Path, renamed: dict) -> bool:
    """Every file with bytes is where qBittorrent will look for it (renames applied)."""
    for e in meta.real_files:
        if e.size == 0 or e.symlink is not None:
            continue
        if not (save_path / renamed.get(e.path, e.path)).is_file():
            return False
    return True
