"""Dashboard cells: plain (text, tone) pairs, computed only for rows on screen and compared cheaply.

A tone is a theme role ("error", "success", "warning", "muted", ""), turned into a color by
`palette()` from the current theme, so light, dark and 16-color (ANSI) themes all stay readable.
Cells are plain text, never markup: a torrent named "Album [FLAC]" shows its brackets.
"""

from datetime import datetime

from rich.text import Text

from .model import PROTECTION_LABEL, TorrentView, attention, totals, visible
from .text import age, drill_text, human_bytes, incident_text, intact_text, swarm_text

COLUMNS = (  # 160 columns in all (11 cells of text plus their padding): a 160x45 terminal shows every one
    ("torrent", "Torrent", 27),
    ("protection", "Protection", 14),
    ("attention", "Attention", 19),
    ("qbt", "qBittorrent", 11),
    ("intact", "Intact", 7),
    ("incident", "Last incident", 15),
    ("swarm", "S/P", 7),
    ("verified", "Verified", 8),
    ("snapshot", "Snapshot", 8),
    ("drill", "Drill", 13),
    ("size", "Size", 9),
)

NAME_WIDTH = COLUMNS[0][2]

PROTECTION_TONE = {"protected": "success", "damaged": "error", "baseline_bad": "error", "healing": "warning",
                   "unreachable": "error", "pending": "", "excluded": "muted", "removed": "muted"}
ATTENTION_TONE = {"damaged": "error", "heal failed": "error", "unreachable": "error", "stopped by seedward": "warning",
                  "not seeding": "warning", "baseline-bad": "error", "suspect snapshot": "error",
                  "drill failed": "error", "coverage gap": "warning"}

Cell = tuple[str, str]


def row_cells(t: TorrentView, now: datetime) -> tuple[Cell, ...]:
    drill_tone = "" if t.drill is None or t.drill.ok is None else ("success" if t.drill.ok else "error")
    qbt_tone = "error" if t.qbt_state in ("error", "missingFiles") else (
        "muted" if t.qbt_state.startswith(("paused", "stopped")) else "")
    reason = attention(t)
    need = reason or ("paused by you" if t.stopped_by == "user" else "")
    if reason == "coverage gap" and t.coverage:
        need = f"survives {t.coverage[0]}/{t.coverage[1]}"
    return (
        (t.name, ""),
        (PROTECTION_LABEL.get(t.protection, t.protection), PROTECTION_TONE.get(t.protection, "")),
        (need or "-", ATTENTION_TONE.get(reason, "muted")),
        (t.qbt_state or "-", qbt_tone),
        intact_text(t.continuity),
        incident_text(t, now),
        (swarm_text(t), ""),
        (age(t.last_verified, now), ""),
        (("!" if t.snapshot_suspect else "") + age(t.snapshot_at, now), "error" if t.snapshot_suspect else ""),
        (drill_text(t.drill, now), drill_tone),
        (human_bytes(t.size), ""),
    )


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plan(torrents: list[TorrentView], filter_name: str, search: str, sort: str):
    """What the dashboard should show: the ordered ids and the header totals (pure; runs in a thread)."""
    return [t.id for t in visible(torrents, filter_name, search, sort)], totals(torrents)


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


def joined(parts, sep: str = " · ") -> Text:
    """One line of (text, style) parts joined by " · ", cut with an ellipsis when too long: never
    wrapped, so a narrow terminal never runs one label into the next. Plain text (no markup)."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    for i, part in enumerate(p for p in parts if p and (p[0] if isinstance(p, tuple) else p)):
        if i:
            text.append(sep, "dim")
        body, style = part if isinstance(part, tuple) else (part, "")
        text.append(str(body), style)
    return text
