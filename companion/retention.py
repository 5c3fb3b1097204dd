"""What is kept, and for how long: the service's "forget", "prune" and "quarantine_expiry" jobs,
queued by the schedule ([schedule] forget / prune / quarantine_expiry; and scrub, the drift
feature's job kind, whose entry replaces [scrub] interval_hours when set).

forget applies [retention] per torrent (restic's policy: the newest snapshot of a torrent is
always kept, and every snapshot of a torrent holds the same verified bytes), then drops every
snapshot of the torrents removed from qBittorrent more than `removed_days` ago, except those a
quarantine entry still rebuilds from. prune frees what no snapshot uses. The expiry removes the
quarantine entries older than [quarantine] keep_days (then the oldest beyond max_mb).
"""

import logging
from datetime import datetime, timedelta, timezone

from . import quarantine
from .catalog import views
from .errors import BadInput
from .service.schedule import Schedule

log = logging.getLogger(__name__)


def _store(service):
    from .store.job import service_store

    return service_store(service)


def removed_torrents(catalog, older_than_days: float, now: datetime) -> list[str]:
    """Torrents removed from qBittorrent more than `older_than_days` ago (0: none)."""
    if older_than_days <= 0:
        return []
    cutoff = (now - timedelta(days=older_than_days)).isoformat()
    return [r["id"] for r in views.removed_torrents(catalog) if _utc(r["removed_at"]) < cutoff]


def _utc(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()
    except ValueError:
        return iso


def forget(service, *, now: datetime | None = None, dry_run: bool = False) -> dict:
    """[retention] over the store; returns what was removed."""
    r = service.settings.retention
    store = _store(service)
    policy = (r.keep_last, r.keep_hourly, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly)
    removed: list[str] = []
    if any(policy):
        removed += store.forget(*policy, dry_run=dry_run).removed
    now = now or datetime.now(timezone.utc)
    held = {e.torrent_id for e in quarantine.entries(service.home.quarantine)}
    gone = [t for t in removed_torrents(service.catalog, r.removed_days, now) if t not in held]
    snaps = [s.id for t in gone for s in store.snapshots(t) if s.id not in removed]
    if snaps:
        removed += store.forget(snapshot_ids=snaps, dry_run=dry_run).removed
    return {"removed": removed, "removed_torrents": gone, "dry_run": dry_run}


def forget_job(service, job) -> None:
    r = service.settings.retention
    if not any((r.keep_last, r.keep_hourly, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly,
                r.removed_days)):
        raise BadInput("[retention]", "no keep rule and no removed_days: refusing a scheduled forget that would"
                       " keep nothing")
    out = forget(service)
    service.emit("forgot", None, f"retention: {len(out['removed'])} snapshots forgotten"
                 + (f" ({len(out['removed_torrents'])} torrents removed from qBittorrent)" if out["removed_torrents"]
                    else ""), snapshots=out["removed"][:100], torrents=out["removed_torrents"][:100])


def prune_job(service, job) -> None:
    result = _store(service).prune()
    service.emit("pruned", None, f"store prune: {result.chunks_removed} chunks, {result.bytes_freed:,} bytes freed"
                 f" ({result.packs_deleted} packs deleted, {result.packs_repacked} repacked)",
                 chunks=result.chunks_removed, bytes=result.bytes_freed)


def quarantine_expiry_job(service, job) -> None:
    q = service.settings.quarantine
    result = quarantine.expire(service.home.quarantine, service.catalog, q.keep_days, q.max_mb * 2**20)
    if result.removed:
        service.emit("quarantine_expired", None, f"quarantine: {len(result.removed)} entries older than"
                     f" {q.keep_days:g} days{' or over ' + str(q.max_mb) + ' MiB' if q.max_mb else ''} removed"
                     f" ({result.bytes_freed:,} bytes); {result.kept} kept",
                     entries=[e.id for e in result.removed][:100], bytes=result.bytes_freed)


def register(service) -> None:
    service.register_job("forget", forget_job)
    service.register_job("prune", prune_job)
    service.register_job("quarantine_expiry", quarantine_expiry_job)
    schedule = Schedule.of(service)
    for name in ("forget", "prune", "quarantine_expiry"):
        schedule.add(name, name)
    schedule.add("scrub", "scrub")  # the drift feature's job kind
    if service.settings.schedule.scrub:  # [schedule] scrub replaces the drift feature's interval timer
        service.settings.scrub.interval_hours = 0
