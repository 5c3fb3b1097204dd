"""Retention and promotion: pure functions over a list of sets and a clock.

The 4th weekly of a calendar month becomes that month's monthly; the last weekly of December becomes
the year's yearly (known once December is over). A set expires when its tier's keep period has passed.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime

from .tiers import RetentionPolicy


@dataclass(frozen=True)
class SetInfo:
    set_id: str
    tier: str
    created: datetime  # timezone-aware UTC
    complete: bool = True
    requested: str = ""  # the tier asked for at creation (a promoted weekly keeps "weekly")


@dataclass(frozen=True)
class Promotion:
    set_id: str
    old_tier: str
    new_tier: str
    reason: str


@dataclass
class RetentionPlan:
    promote: list[Promotion] = field(default_factory=list)
    expire: list[SetInfo] = field(default_factory=list)
    keep: list[SetInfo] = field(default_factory=list)
    incomplete: list[SetInfo] = field(default_factory=list)


def tier_on_create(requested: str, created: datetime, earlier: list[SetInfo]) -> tuple[str, str]:
    """The tier a new set is written as, and why: a weekly that is its month's 4th becomes monthly."""
    if requested != "weekly":
        return requested, ""
    same_month = [s for s in earlier if s.complete and _weekly_origin(s)
                  and (s.created.year, s.created.month) == (created.year, created.month)]
    if len(same_month) == 3:
        return "monthly", f"4th weekly of {created:%Y-%m}"
    return "weekly", ""


def _weekly_origin(s: SetInfo) -> bool:
    # A promoted weekly still counts among its month's weeklies; a monthly asked for as such does not.
    return (s.requested or s.tier) == "weekly"


def plan_retention(sets: list[SetInfo], now: datetime, policy: RetentionPolicy) -> RetentionPlan:
    plan = RetentionPlan()
    tiers = {s.set_id: s.tier for s in sets if s.complete}
    weeklies = sorted((s for s in sets if s.complete and _weekly_origin(s)), key=lambda s: s.created)

    by_month: dict[tuple[int, int], list[SetInfo]] = {}
    for s in weeklies:
        by_month.setdefault((s.created.year, s.created.month), []).append(s)
    for (year, month), group in sorted(by_month.items()):
        if len(group) >= 4 and tiers[group[3].set_id] == "weekly":
            tiers[group[3].set_id] = "monthly"
            plan.promote.append(Promotion(group[3].set_id, "weekly", "monthly", f"4th weekly of {year}-{month:02d}"))
        december_over = (now.year, now.month) > (year, 12)
        if month == 12 and december_over and tiers[group[-1].set_id] != "yearly":
            last = group[-1]
            old = next((p for p in plan.promote if p.set_id == last.set_id), None)
            if old is not None:
                plan.promote.remove(old)
            plan.promote.append(Promotion(last.set_id, last.tier, "yearly", f"last weekly of December {year}"))
            tiers[last.set_id] = "yearly"

    for s in sets:
        if not s.complete:
            plan.incomplete.append(s)
            continue
        effective = replace(s, tier=tiers[s.set_id])
        if now >= policy.retain_until(effective.tier, s.created):
            plan.expire.append(effective)
        else:
            plan.keep.append(effective)
    expired = {s.set_id for s in plan.expire}
    plan.promote = [p for p in plan.promote if p.set_id not in expired]
    return plan
