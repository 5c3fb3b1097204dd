"""Whether a torrent's protection policy gives it a full snapshot now (`snapshot`, or `auto` for a
small torrent within the budget): asked by the protect job, `seedward snapshot --all` and the
ladder, so all three decide alike."""

from ..catalog import ladder as rows
from ..catalog.snapshots import list_snapshots
from .budget import full_snapshot_refusal


def policy_of(settings, row):
    tags = [t.strip() for t in (row["tags"] or "").split(",") if t.strip()]
    return settings.protection.policy_for(row["category"] or "", tags)


def full_snapshot_refused(catalog, settings, row) -> str | None:
    """None when the torrent (a catalog row) gets a full snapshot, else why not (one line)."""
    policy = policy_of(settings, row)
    if policy.level not in ("snapshot", "auto"):
        return f"policy level {policy.level}"
    usage = rows.store_usage(catalog) if policy.level == "auto" else {"bytes": 0, "payload_bytes": 0}
    return full_snapshot_refusal(settings.protection, policy, row["payload_size"], usage,
                                 bool(list_snapshots(catalog, row["id"])))
