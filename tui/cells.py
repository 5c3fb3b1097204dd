"""Dashboard cells: plain (text, tone) pairs, computed off the UI thread and compared cheaply.

A tone is a theme role ("error", "success", "warning", "muted", ""), turned into a color by
`palette()` from the current theme, so light, dark and 16-color (ANSI) themes all stay readable.
"""

from datetime import datetime

from rich.markup import escape

from .model import (PROTECTION_LABEL, TorrentView, age, companions_text, drill_text, human_bytes, swarm_text,
                    totals, visible)

COLUMNS = (
    ("torrent", "Torrent", 32),
    ("protection", "Protection", 15),
    ("qbt", "qBittorrent", 12),
    ("swarm", "S/P", 7),
    ("verified", "Verified", 8),
    ("snapshot", "Snapshot", 8),
    ("drill", "Drill", 14),
    ("drift", "Drift", 5),
    ("companions", "Companions", 13),
    ("size", "Size", 10),
)

NAME_WIDTH = COLUMNS[0][2]

PROTECTION_TONE = {"protected": "success", "damaged": "error", "baseline_bad": "error", "healing": "warning",
                   "pending": "", "excluded": "muted", "removed": "muted"}

Cell = tuple[str, str]


def row_cells(t: TorrentView, now: datetime) -> tuple[Cell, ...]:
    drill_tone = "" if t.drill is None or t.drill.ok is None else ("success" if t.drill.ok else "error")
    qbt_tone = "error" if t.qbt_state in ("error", "missingFiles") else (
        "muted" if t.qbt_state.startswith(("paused", "stopped")) else "")
    return (
        (fit(t.name, NAME_WIDTH), ""),
        (PROTECTION_LABEL.get(t.protection, t.protection), PROTECTION_TONE.get(t.protection, "")),
        (t.qbt_state or "-", qbt_tone),
        (swarm_text(t), ""),
        (age(t.last_verified, now), ""),
        (("!" if t.snapshot_suspect else "") + age(t.snapshot_at, now), "error" if t.snapshot_suspect else ""),
        (drill_text(t.drill, now), drill_tone),
        ("-" if t.drift_alerts is None else str(t.drift_alerts), "error" if t.drift_alerts else ""),
        (companions_text(t), "success" if t.parity else ""),
        (human_bytes(t.size), ""),
    )


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plan(torrents: list[TorrentView], filter_name: str, search: str, sort: str, now: datetime):
    """What the dashboard should show: ordered [(id, cells)] and the header totals (pure; runs in a thread)."""
    rows = [(t.id, row_cells(t, now)) for t in visible(torrents, filter_name, search, sort)]
    return rows, totals(torrents)


def color(css_variables: dict[str, str], role: str, default: str) -> str:
    """A theme color as Rich spells it (ANSI themes name colors `ansi_green`; Rich says `green`)."""
    value = css_variables.get(role) or default
    return value.removeprefix("ansi_")


def palette(css_variables: dict[str, str]) -> dict[str, str]:
    return {
        "": "",
        "error": f"bold {color(css_variables, 'error', 'red')}",
        "success": color(css_variables, "success", "green"),
        "warning": f"bold {color(css_variables, 'warning', 'yellow')}",
        "muted": "dim",
    }


def render(cell: Cell, colors: dict[str, str]) -> str:
    """Rich markup: the table parses it only when the row is drawn (10,000 rows, a screenful drawn)."""
    text, tone = cell
    style = colors.get(tone, "")
    return f"[{style}]{escape(text)}[/]" if style else escape(text)
