"""`archive list` and `archive prune`: the remote is the truth; the catalog remembers what we made."""

import logging
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ..catalog import archives as records
from .remote import Remote
from .retention import SetInfo, plan_retention
from .tiers import RetentionPolicy

log = logging.getLogger(__name__)


def _created(set_id: str, doc: dict | None) -> datetime:
    if doc and doc.get("created"):
        return datetime.fromisoformat(doc["created"])
    return datetime.strptime(set_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def remote_sets(remote: Remote) -> list[dict]:
    """Every set folder on the remote with its manifest (None when incomplete)."""
    out = []
    for s in remote.list_sets():
        doc = remote.read_manifest(s.tier, s.set_id) if s.complete else None
        out.append({
            "set_id": s.set_id, "tier": s.tier, "complete": s.complete,
            "created": _created(s.set_id, doc).isoformat(timespec="seconds"),
            "retain_until": doc["retain_until"] if doc else None,
            "requested": doc.get("requested", s.tier) if doc else s.tier,
            "full": doc["full"] if doc else None,
            "bytes": sum(s.files.values()),
            "volumes": len(doc["volumes"]) if doc else None,
            "strategy": doc["par2"]["strategy"] if doc else None,
            "protection": doc.get("protection") if doc else None,
            "doc": doc,
        })
    return out


def list_all(remote: Remote | None, catalog) -> list[dict]:
    sets = {}
    if remote is not None:
        for s in remote_sets(remote):
            s.pop("doc")
            s["state"] = "uploaded" if s["complete"] else "incomplete"
            sets[s["set_id"]] = s
    for row in records.list_sets(catalog, ("local",)):
        sets.setdefault(row["set_id"], {
            "set_id": row["set_id"], "tier": row["tier"], "complete": True, "created": row["created_at"],
            "retain_until": row["retain_until"], "requested": row["requested"], "full": row["full"],
            "bytes": row["archive_bytes"], "volumes": len(row["manifest"].get("volumes", [])),
            "strategy": row["manifest"].get("par2", {}).get("strategy"), "protection": row["manifest"].get("protection"),
            "state": "waiting for upload", "error": row["error"],
        })
    return sorted(sets.values(), key=lambda s: s["created"])


def prune(remote: Remote, catalog, policy: RetentionPolicy, scratch: Path, now: datetime | None = None,
          dry_run: bool = False) -> dict:
    """Promote, then delete expired sets and the leftovers of interrupted uploads (sets still waiting in
    the outbox are left alone: the next create finishes them)."""
    now = now or datetime.now(timezone.utc)
    found = remote_sets(remote)
    by_id = {s["set_id"]: s for s in found}
    infos = [SetInfo(s["set_id"], s["tier"], datetime.fromisoformat(s["created"]), s["complete"], s["requested"])
             for s in found]
    plan = plan_retention(infos, now, policy)
    pending = {r["set_id"] for r in records.list_sets(catalog, ("local",))}
    report = {"dry_run": dry_run, "promoted": [], "expired": [], "cleaned": [], "kept": [s.set_id for s in plan.keep]}
    for p in plan.promote:
        doc = dict(by_id[p.set_id]["doc"])
        doc.update(tier=p.new_tier, promoted=p.reason,
                   retain_until=policy.retain_until(p.new_tier, datetime.fromisoformat(doc["created"])).isoformat(
                       timespec="seconds"))
        report["promoted"].append(asdict(p))
        if not dry_run:
            remote.move_set(p.old_tier, p.new_tier, p.set_id, doc, scratch)
            if records.get_set(catalog, p.set_id):
                records.update_set(catalog, p.set_id, tier=p.new_tier, retain_until=doc["retain_until"])
    for s in plan.expire:
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
    return report
