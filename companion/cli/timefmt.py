"""One time format for the command line: ISO 8601 with its UTC offset in JSON (what the catalog
stores, `2026-11-01T12:00:00.000+00:00`), the local short form in tables (`2026-11-01 13:00`)."""

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import PurePath

from ..errors import BadInput

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse(value) -> datetime | None:
    """An aware datetime from what seedward stores or reports: ISO text (a naive one is UTC, as
    the catalog writes it), a datetime, or seconds since the epoch. None for nothing or junk."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def iso(value) -> str | None:
    """For JSON: ISO 8601 with offset, milliseconds (the catalog's own form)."""
    when = parse(value)
    return None if when is None else when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def local(value, seconds: bool = False, missing: str = "-") -> str:
    """For tables: local time, `YYYY-MM-DD HH:MM` (with `:SS` when asked)."""
    when = parse(value)
    if when is None:
        return missing
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_date(value, missing: str = "-") -> str:
    when = parse(value)
    return missing if when is None else when.astimezone().strftime("%Y-%m-%d")


def since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: an ISO date or time (local when it has no offset), or an age: 30m, 2h, 7d, 1w."""
    now = now or datetime.now(timezone.utc)
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(text, "not a time: give an ISO date or time (2026-11-01, 2026-11-01T08:00) "
                       "or an age (30m, 2h, 7d, 1w)") from None
    return when if when.tzinfo else when.astimezone()  # a time without offset is the user's local time


def json_default(obj):
    """json.dumps(default=): datetimes as ISO 8601 with offset, paths as text."""
    if isinstance(obj, datetime):
        return iso(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    return str(obj)
