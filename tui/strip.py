"""A torrent's last 7 days in one line: seeding, stopped, damaged, healing, unreachable (the
service's continuity timeline), drawn so it reads without color; each cell shows the worst state
of its stretch of time, as the piece map does for pieces."""

from rich.text import Text
from textual.widget import Widget

from .text import parse_time

GLYPH = {"seeding": "█", "stopped": "▒", "damaged": "X", "healing": "~", "unreachable": "?", "paused": "-",
         "unwatched": "·"}
SEVERITY = {"damaged": 6, "healing": 5, "unreachable": 4, "stopped": 3, "paused": 2, "unwatched": 1, "seeding": 0}
TONE = {"seeding": "success", "stopped": "warning", "damaged": "error", "healing": "warning", "unreachable": "error",
        "paused": "muted", "unwatched": "muted"}
NAMES = (("seeding", "seeding"), ("stopped", "stopped by seedward"), ("damaged", "damaged"), ("healing", "healing"),
         ("unreachable", "unreachable"), ("paused", "stopped by you"), ("unwatched", "not watched"))


def legend(colors: dict[str, str]) -> Text:
    """The strip's time axis and its glyphs, colored as in the strip."""
    text = Text("7 d ago → now   ", style="dim", no_wrap=True, overflow="ellipsis", end="")
    for state, name in NAMES:
        text.append(GLYPH[state], colors.get(TONE[state], ""))
        text.append(f" {name}   ")
    return text


def strip_states(timeline: list[dict], width: int) -> list[str]:
    """`width` cells over the timeline's span, each the worst state inside it ("unwatched" where
    the timeline says nothing)."""
    spans = []
    for seg in timeline:
        start, end = parse_time(seg.get("start")), parse_time(seg.get("end"))
        if start is not None and end is not None and end > start:
            spans.append((start.timestamp(), end.timestamp(), seg.get("state", "unwatched")))
    if width <= 0 or not spans:
        return ["unwatched"] * max(0, width)
    lo, hi = spans[0][0], spans[-1][1]
    step = (hi - lo) / width
    out = []
    j = 0
    for cell in range(width):
        a, b = lo + cell * step, lo + (cell + 1) * step
        while j < len(spans) and spans[j][1] <= a:
            j += 1
        worst, k = None, j
        while k < len(spans) and spans[k][0] < b:
            state = spans[k][2]
            if worst is None or SEVERITY.get(state, 1) > SEVERITY.get(worst, 1):
                worst = state
            k += 1
        out.append(worst or "unwatched")
    return out


class ContinuityStrip(Widget):
    DEFAULT_CSS = "ContinuityStrip { height: 1; }"

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.timeline: list[dict] = []
        self.tones: dict[str, str] = {}

    def show(self, timeline: list[dict], colors: dict[str, str]) -> None:
        self.timeline, self.tones = timeline or [], colors
        self.refresh()

    def render(self) -> Text:
        width = max(0, self.size.width)
        text = Text(no_wrap=True, end="")
        for state in strip_states(self.timeline, width):
            text.append(GLYPH.get(state, "·"), self.tones.get(TONE.get(state, ""), ""))
        return text
