"""`archive list` and `archive prune`: the remote is the truth; the catalog remembers what we made.

Sets under S3 Object Lock are never deleted before their lock ends (prune reports them as locked);
a locked set promoted to a higher tier is copied there, and its old copy is removed by a later
prune once that copy's own lock has ended.
"""

import logging
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import archives as records
from .remote import TIER_ORDER, Lock, Remote
from .retention import SetInfo, plan_retention
from .tiers import RetentionPolicy, lock_until

log = logging.getLogger(__name__)


def _created(set_id: str, doc: dict | None) -> datetime:
    if doc and doc.get("created"):
        return datetime.fromisoformat(doc["created"])
    return datetime.strptime(set_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def overhead(files: dict[str, int], doc: dict) -> dict:
    """The redundancy of a set from its files as they are on the remote (or in the outbox)."""
    names = {v["name"] for v in doc.get("volumes", [])}
    volume_bytes = sum(size for name, size in files.items() if name in names)
    par2_bytes = sum(size for name, size in files.items() if name.endswith(".par2"))
    return {"volume_bytes": volume_bytes, "par2_bytes": par2_bytes,
            "overhead_percent": round(100 * par2_bytes / volume_bytes, 2) if volume_bytes else None,
            "volumes_present": sum(1 for name in files if name in names), "volumes": len(names)}


def _summary(set_id: str, tier: str, complete: bool, doc: dict | None, files: dict[str, int] | None) -> dict:
    return {
        "set_id": set_id, "tier": tier, "complete": complete,
        "created": _created(set_id, doc).isoformat(timespec="seconds"),
        "retain_until": doc["retain_until"] if doc else None,
        "locked_until": doc.get("locked_until") if doc else None,
        "requested": doc.get("requested", tier) if doc else tier,
        "full": doc["full"] if doc else None,
        "bytes": sum(files.values()) if files is not None else None,
        "volumes": len(doc["volumes"]) if doc else None,
        "strategy": doc["par2"]["strategy"] if doc else None,
        "protection": doc.get("protection") if doc else None,
        "as_stored": overhead(files, doc) if doc and files is not None else None,
    }


def remote_sets(remote: Remote) -> list[dict]:
    """Every set on the remote with its manifest (None when incomplete)."""
    out = []
    for s in remote.list_sets():
        doc = remote.read_manifest(s.tier, s.set_id) if s.complete else None
        item = _summary(s.set_id, s.tier, s.complete, doc, s.files)
        item["remote"] = remote.dest
        item["doc"] = doc
        out.append(item)
    return out


def _from_catalog(row: dict, state: str) -> dict:
    doc = row["manifest"]
    local = Path(row["local_path"]) if row.get("local_path") else None
    files = {p.name: p.stat().st_size for p in local.iterdir() if p.is_file()} if local and local.is_dir() else None
    item = _summary(row["set_id"], row["tier"], True, doc, files)
    item.update(remote=row["remote"], state=state, error=row.get("error"), bytes=row["archive_bytes"])
    return item


def list_all(remote: Remote | None, catalog) -> list[dict]:
    """With a remote: what it holds (the truth), plus the sets still waiting in the outbox. Without:
    the sets this state home made, from the catalog."""
    sets = {}
    if remote is not None:
        for s in remote_sets(remote):
            s.pop("doc")
            s["state"] = "uploaded" if s["complete"] else "incomplete"
            sets[s["set_id"]] = s
        for row in records.list_sets(catalog, ("local",)):
            sets.setdefault(row["set_id"], _from_catalog(row, "waiting for upload"))
    else:
        for row in records.list_sets(catalog, ("local", "uploaded")):
            state = "waiting for upload" if row["state"] == "local" else "uploaded (catalog)"
            sets[row["set_id"]] = _from_catalog(row, state)
    return sorted(sets.values(), key=lambda s: s["created"])


def _locked(doc: dict | None, now: datetime) -> str | None:
    until = (doc or {}).get("locked_until")
    return until if until and datetime.fromisoformat(until) > now else None


def prune(remote: Remote, catalog, policy: RetentionPolicy, scratch: Path, now: datetime | None = None,
          dry_run: bool = False, settings=None) -> dict:
    """Promote, then delete expired sets and the leftovers of interrupted uploads (sets still waiting in
    the outbox are left alone: the next create finishes them). Locked sets are never deleted.
    settings: [archive] (for the lock of a promoted set's new tier)."""
    now = now or datetime.now(timezone.utc)
    found = remote_sets(remote)
    by_id = {s["set_id"]: s for s in found}
    infos = [SetInfo(s["set_id"], s["tier"], datetime.fromisoformat(s["created"]), s["complete"], s["requested"])
             for s in found]
    plan = plan_retention(infos, now, policy)
    pending = {r["set_id"] for r in records.list_sets(catalog, ("local",))}
    report = {"dry_run": dry_run, "promoted": [], "expired": [], "cleaned": [], "locked": [],
              "kept": [s.set_id for s in plan.keep]}
    for p in plan.promote:
        old = by_id[p.set_id]["doc"]
        doc = dict(old)
        created = datetime.fromisoformat(doc["created"])
        new_until = lock_until(settings, p.new_tier, created) if settings is not None else None
        doc.update(tier=p.new_tier, promoted=p.reason,
                   retain_until=policy.retain_until(p.new_tier, created).isoformat(timespec="seconds"))
        if new_until is not None and new_until > now:
            doc.update(locked_until=new_until.isoformat(timespec="seconds"), lock_mode=settings.lock_mode.upper())
        else:
            doc.update(locked_until=None, lock_mode=None)
        still = _locked(old, now)
        report["promoted"].append({**asdict(p), "old_copy_locked_until": still})
        if not dry_run:
            lock = Lock(doc["lock_mode"], datetime.fromisoformat(doc["locked_until"])) if doc["locked_until"] else None
            remote.move_set(p.old_tier, p.new_tier, p.set_id, doc, scratch, lock, delete_old=still is None)
            if records.get_set(catalog, p.set_id):
                records.update_set(catalog, p.set_id, tier=p.new_tier, retain_until=doc["retain_until"],
                                   locked_until=doc["locked_until"], manifest=_merged(catalog, p.set_id, doc))
    for s in plan.expire:
        still = _locked(by_id[s.set_id]["doc"], now)
        if still:
            report["locked"].append({"set_id": s.set_id, "tier": s.tier, "locked_until": still})
            continue
        report["expired"].append({"set_id": s.set_id, "tier": s.tier, "created": s.created.isoformat()})
        if not dry_run:
            remote.delete_set(by_id[s.set_id]["tier"], s.set_id)
            if records.get_set(catalog, s.set_id):
                records.update_set(catalog, s.set_id, state="pruned")
    for s in plan.incomplete:
        if s.set_id in pending:
            continue
        report["cleaned"].append({"set_id": s.set_id, "tier": s.tier})
        if not dry_run:
            remote.delete_set(s.tier, s.set_id)
    _old_copies(remote, by_id, now, dry_run, report)
    return report


def _old_copies(remote: Remote, by_id: dict, now: datetime, dry_run: bool, report: dict) -> None:
    """Lower-tier copies of promoted sets, kept while locked: deleted once their lock has ended."""
    for folder in remote.list_folders():
        top = by_id.get(folder.set_id)
        if top is None or TIER_ORDER[folder.tier] >= TIER_ORDER[top["tier"]]:
            continue
        doc = remote.read_manifest(folder.tier, folder.set_id) if folder.complete else None
        still = _locked(doc, now)
        if still:
            report["locked"].append({"set_id": folder.set_id, "tier": folder.tier, "locked_until": still,
                                     "why": f"old copy of a set promoted to {top['tier']}"})
            continue
        report["cleaned"].append({"set_id": folder.set_id, "tier": folder.tier, "why": "old copy of a promoted set"})
        if not dry_run:
            remote.delete_set(folder.tier, folder.set_id)


def _merged(catalog, set_id: str, public: dict) -> dict:
    """The catalog's full manifest (with member names) with the promoted tier's fields."""
    row = records.get_set(catalog, set_id)
    doc = dict(row["manifest"])
    for key in ("tier", "promoted", "retain_until", "locked_until", "lock_mode"):
        doc[key] = public.get(key)
    return doc
