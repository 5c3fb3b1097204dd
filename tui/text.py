"""The words and figures the screens show for a torrent (pure: no I/O): ages, sizes, durations,
the intact share and continuity headline, the last incident, drills, swarms and piece-map cells."""

from datetime import datetime, timezone

from companion.durations import seconds_text as duration

from .model import HEALED_SHOWN_DAYS, Continuity, Drill, TorrentView


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def age(value: str | None, now: datetime) -> str:
    """'42s', '5m', '3h', '2d' ago; '-' when unknown."""
    when = parse_time(value)
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def rto_text(s: float | None) -> str:
    """A drill's RTO, to the second: '42.0s', '3m05s'."""
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def drill_text(d: Drill | None, now: datetime) -> str:
    if d is None:
        return "-"
    verdict = "-" if d.ok is None else ("pass" if d.ok else "FAIL")
    rto = f" {rto_text(d.rto_seconds)}" if d.rto_seconds is not None else ""
    return f"{verdict}{rto} {age(d.at, now)}".strip()


WINDOW_SECONDS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}  # the service's windows


def percent(share: float) -> str:
    """99.98%: rounded down, so any interruption shows (100% only when nothing was lost)."""
    if share >= 1.0:
        return "100%"
    return f"{min(int(share * 10000) / 100, 99.99):.2f}%"


def intact_text(c: Continuity | None) -> tuple[str, str]:
    """A torrent's intact share over 7 days and its tone; '-' when nothing was watched seeding."""
    if c is None or not c.watched:
        return "-", "muted"
    share = c.intact_share
    tone = "success" if share >= 1.0 else "" if share >= 0.99 else "warning" if share >= 0.9 else "error"
    return percent(c.intact_share), tone


def incident_text(t: TorrentView, now: datetime) -> tuple[str, str]:
    """The last incident: red while it lasts, then history ("healed 2h ago", muted) for 30 days."""
    last = t.continuity.last_incident if t.continuity else None
    if t.protection == "damaged":
        word = "heal failed" if t.heal_outcome == "failed" else "damaged"
        return f"{word} {age(t.heal_at or last, now)}".replace(" -", ""), "error"
    if t.protection == "healing":
        return "healing", "warning"
    if t.protection in ("baseline_bad", "unreachable"):
        word = "bad since" if t.protection == "baseline_bad" else "unreachable"
        return f"{word} {age(last, now)}".replace(" -", ""), "error"
    if t.stopped_by == "seedward":
        return f"stopped {age(t.stopped_since, now)}".replace(" -", ""), "warning"
    when = t.heal_at if t.heal_outcome == "healed" else last
    seen = parse_time(when)
    if seen is None or (now - seen).days >= HEALED_SHOWN_DAYS:
        return "-", ""
    return (f"healed {age(when, now)} ago" if t.heal_outcome == "healed" else f"resumed {age(when, now)} ago"), "muted"


def headline(c: Continuity | None) -> str:
    """'99.98 % seeding intact over 7 d · 3 incidents · median heal 0.4 s'."""
    if c is None:
        return "continuity: not reported by this service"
    window = c.window.replace("d", " d").replace("h", " h")
    if not c.watched:
        return f"nothing watched seeding over {window} yet"
    parts = [f"{percent(c.intact_share).replace('%', ' %')} seeding intact {span(c.window, c.watched_seconds)}",
             f"{c.interruptions} incident{'' if c.interruptions == 1 else 's'}"]
    if c.median_heal_seconds is not None:
        parts.append(f"median heal {duration(c.median_heal_seconds)}")
    if c.longest_outage_seconds:
        parts.append(f"longest outage {duration(c.longest_outage_seconds)}")
    return " · ".join(parts)


def span(window: str, watched: float | None) -> str:
    """'over 7 d' once the window is covered (watched 99 % of it); until then 'of the 10 s watched (window 7 d)'."""
    name = window.replace("d", " d").replace("h", " h")
    length = WINDOW_SECONDS.get(window, 0.0)
    if watched is None or watched >= 0.99 * length:
        return f"over {name}"
    return f"of the {duration(watched)} watched (window {name})"


def companions_text(t: TorrentView) -> str:
    if t.companions is None:
        return "-"
    if t.parity is None:
        return str(t.companions)
    return f"{t.companions} {'parity' if t.parity else 'no parity'}"


def swarm_text(t: TorrentView) -> str:
    if t.seeds is None and t.peers is None:
        return "-"
    return f"{'-' if t.seeds is None else t.seeds}/{'-' if t.peers is None else t.peers}"


# Piece map: one char per piece from the service (o ok, d damaged, h healing, u unverified).
PIECE_SEVERITY = {"d": 3, "h": 2, "u": 1, "o": 0}


def piece_cells(pieces: str, width: int) -> str:
    """Squeeze the per-piece string into `width` cells; a cell shows its worst piece, as qBittorrent does."""
    n = len(pieces)
    if n == 0 or width <= 0:
        return ""
    if n <= width:  # stretch, so the bar always spans the line
        return "".join(pieces[cell * n // width] for cell in range(width))
    out = []
    for cell in range(width):
        lo, hi = cell * n // width, max(cell * n // width + 1, (cell + 1) * n // width)
        chunk = pieces[lo:hi]
        out.append(max(chunk, key=lambda c: PIECE_SEVERITY.get(c, 1)))
    return "".join(out)


def piece_counts(pieces: str) -> dict[str, int]:
    return {name: pieces.count(ch) for ch, name in (("o", "ok"), ("d", "damaged"), ("h", "healing"),
                                                     ("u", "unverified"))}
