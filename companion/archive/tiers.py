"""Tiers, their PAR2 redundancy by archive size (the seed's table 1), how long each is kept, and how
long each stays immutable (S3 Object Lock)."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

TIERS = ("daily", "weekly", "monthly", "yearly")
FULL_TIERS = ("weekly", "monthly", "yearly")
GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class SizeClass:
    name: str
    below: float  # archive bytes; the class holds sizes < below
    redundancy: int  # percent of the set's data written as PAR2 recovery blocks


_REDUNDANCY = {
    "daily": (SizeClass("small", 1 * GiB, 10), SizeClass("medium", 10 * GiB, 8), SizeClass("large", float("inf"), 8)),
    "weekly": (SizeClass("small", 1 * GiB, 15), SizeClass("medium", 10 * GiB, 12), SizeClass("large", float("inf"), 12)),
    "monthly": (
        SizeClass("very small", 100 * MiB, 30),
        SizeClass("small", 1 * GiB, 25),
        SizeClass("medium-small", 5 * GiB, 20),
        SizeClass("medium", 20 * GiB, 18),
        SizeClass("large", 100 * GiB, 15),
        SizeClass("very large", float("inf"), 15),
    ),
}
_REDUNDANCY["yearly"] = _REDUNDANCY["monthly"]


def size_class(tier: str, archive_bytes: int) -> SizeClass:
    for cls in _REDUNDANCY[tier]:
        if archive_bytes < cls.below:
            return cls
    raise AssertionError("unreachable: the last class is unbounded")


@dataclass(frozen=True)
class RetentionPolicy:
    daily_days: int = 30
    weekly_weeks: int = 12
    monthly_days: int = 365
    yearly_days: int = 5 * 365

    @classmethod
    def from_settings(cls, s) -> "RetentionPolicy":
        return cls(s.keep_daily_days, s.keep_weekly_weeks, s.keep_monthly_days, s.keep_yearly_days)

    def keep_for(self, tier: str) -> timedelta:
        return {
            "daily": timedelta(days=self.daily_days),
            "weekly": timedelta(weeks=self.weekly_weeks),
            "monthly": timedelta(days=self.monthly_days),
            "yearly": timedelta(days=self.yearly_days),
        }[tier]

    def retain_until(self, tier: str, created: datetime) -> datetime:
        return created + self.keep_for(tier)


def lock_until(settings, tier: str, created: datetime) -> datetime | None:
    """When a set's S3 Object Lock retention ends (None: the tier is not locked)."""
    days = getattr(settings.immutable_days, tier)
    return created + timedelta(days=days) if days > 0 else None


def volume_size_for(estimate: int, volume_size: int, min_volumes: int, redundancy: float) -> int:
    """The volume size for a set of about `estimate` bytes: the configured size, or smaller so that
    a small set still has enough volumes for its PAR2 to rebuild a lost one (at least min_volumes,
    and 100/redundancy + 1), each of at least 64 KiB."""
    count = max(min_volumes, math.ceil(100 / redundancy) + 1) if redundancy > 0 else min_volumes
    if count <= 1 or estimate >= volume_size * count:
        return volume_size
    size = max(64 << 10, -(-estimate // count))
    return min(volume_size, -(-size // 512) * 512)
