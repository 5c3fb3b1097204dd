"""When periodic work is due: the specs of `[schedule]` entries, parsed and evaluated (pure).

A spec is "" (off), "HH:MM" or "daily HH:MM", "weekly DAY HH:MM" (mon..sun), "monthly D HH:MM"
(day 1-31; a shorter month runs on its last day), "yearly MON D HH:MM" (jan..dec), or "every N(m|h|d)".
Times are the machine's local time. `due(spec, last, now)` is the latest scheduled moment in
(last, now], or None: a run missed while the service was down is due once when it comes back
(anacron's rule), never once per missed day.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class BadSpec(ValueError):
    pass


@dataclass(frozen=True)
class Spec:
    kind: str  # daily | weekly | monthly | yearly | every
    hour: int = 0
    minute: int = 0
    day: int = 0  # weekday (0 = Monday), day of month, or day of the yearly's month
    month: int = 0  # 1-12 for yearly
    seconds: int = 0  # for every

    def latest(self, now: datetime) -> datetime:
        """The latest scheduled moment at or before now (not for `every`)."""
        at = now.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if self.kind == "daily":
            return at if at <= now else at - timedelta(days=1)
        if self.kind == "weekly":
            at -= timedelta(days=(now.weekday() - self.day) % 7)
            return at if at <= now else at - timedelta(days=7)
        if self.kind == "monthly":
            year, month = now.year, now.month
            for _ in range(2):
                at = _on(now, year, month, self.day, self.hour, self.minute)
                if at <= now:
                    return at
                year, month = (year, month - 1) if month > 1 else (year - 1, 12)
            return at
        for year in (now.year, now.year - 1):  # yearly
            at = _on(now, year, self.month, self.day, self.hour, self.minute)
            if at <= now:
                return at
        return at


def _on(like: datetime, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    day = min(day, calendar.monthrange(year, month)[1])
    return like.replace(year=year, month=month, day=day, hour=hour, minute=minute, second=0, microsecond=0)


def parse(text: str) -> Spec | None:
    """None for "" (off); raises BadSpec saying what is wrong."""
    words = text.strip().lower().split()
    if not words:
        return None
    if words[0] == "every":
        m = re.fullmatch(r"(\d+)([mhd])", "".join(words[1:]))
        if not m or int(m.group(1)) == 0:
            raise BadSpec(f"{text!r}: write every N followed by m, h or d (every 6h)")
        return Spec("every", seconds=int(m.group(1)) * _UNITS[m.group(2)])
    kind = words[0] if words[0] in ("daily", "weekly", "monthly", "yearly") else None
    rest = words[1:] if kind else words
    if kind is None:
        kind = "weekly" if rest and rest[0][:3] in DAYS and len(rest) == 2 else "daily"
    hour, minute = _clock(rest[-1] if rest else "", text)
    args = rest[:-1]
    if kind == "daily" and not args:
        return Spec("daily", hour, minute)
    if kind == "weekly" and len(args) == 1 and args[0][:3] in DAYS:
        return Spec("weekly", hour, minute, DAYS.index(args[0][:3]))
    if kind == "monthly" and len(args) == 1 and args[0].isdigit() and 1 <= int(args[0]) <= 31:
        return Spec("monthly", hour, minute, int(args[0]))
    if kind == "yearly" and len(args) == 2 and args[0][:3] in MONTHS and args[1].isdigit() and 1 <= int(args[1]) <= 31:
        return Spec("yearly", hour, minute, int(args[1]), MONTHS.index(args[0][:3]) + 1)
    raise BadSpec(f"{text!r}: expected \"HH:MM\", \"weekly DAY HH:MM\", \"monthly D HH:MM\", "
                  f"\"yearly MON D HH:MM\" or \"every N(m|h|d)\"")


def _clock(word: str, text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", word)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise BadSpec(f"{text!r}: no time of day HH:MM at its end")
    return int(m.group(1)), int(m.group(2))


def due(spec: Spec, last: datetime | None, now: datetime) -> datetime | None:
    """The moment a run is due for (the latest scheduled one after `last`), or None. With no last
    run, a calendar spec is due only from its next moment on, an `every` spec right away."""
    if spec.kind == "every":
        if last is None or (now - last).total_seconds() >= spec.seconds:
            return now
        return None
    latest = spec.latest(now)
    if last is None or latest <= last:
        return None
    return latest
