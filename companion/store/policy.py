"""Which snapshots `forget` keeps: restic's retention policy, as a pure function.

Snapshots are walked newest first. --keep-last N keeps the N newest. --keep-daily N keeps,
for the N most recent days that have snapshots, the newest snapshot of each day; hourly,
weekly (ISO week), monthly and yearly work the same way. A snapshot kept by any rule is kept.
A negative count means unlimited. With no rule at all nothing is removed. These are the
semantics of restic 0.14 (Debian 12's; the tests compare with it); later restic also keeps
the oldest snapshot while a rule has counts left.
"""

from dataclasses import dataclass, field
from datetime import datetime

RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass
class KeepPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def empty(self) -> bool:
        return all(getattr(self, r) == 0 for r in RULES)


@dataclass
class Decision:
    keep: list = field(default_factory=list)  # (snapshot id, [reasons])
    remove: list = field(default_factory=list)  # snapshot ids


def _bucket(rule: str, t: datetime, sid: str):
    if rule == "last":
        return sid
    if rule == "hourly":
        return (t.year, t.month, t.day, t.hour)
    if rule == "daily":
        return (t.year, t.month, t.day)
    if rule == "weekly":
        year, week, _ = t.isocalendar()
        return (year, week)
    if rule == "monthly":
        return (t.year, t.month)
    return t.year


def apply_policy(snapshots: list[tuple[str, datetime]], policy: KeepPolicy) -> Decision:
    """snapshots: (id, created time) of one group (one torrent). Returns what to keep and remove."""
    ordered = sorted(snapshots, key=lambda s: (s[1], s[0]), reverse=True)
    decision = Decision()
    if policy.empty():
        decision.keep = [(sid, ["no policy"]) for sid, _ in ordered]
        return decision
    left = {r: getattr(policy, r) for r in RULES}
    last_bucket: dict[str, object] = {}
    for sid, created in ordered:
        reasons = []
        for rule in RULES:
            if left[rule] == 0:
                continue
            bucket = _bucket(rule, created, sid)
            if rule in last_bucket and last_bucket[rule] == bucket:
                continue
            last_bucket[rule] = bucket
            reasons.append(rule)
            if left[rule] > 0:
                left[rule] -= 1
        if reasons:
            decision.keep.append((sid, reasons))
        else:
            decision.remove.append(sid)
    return decision
