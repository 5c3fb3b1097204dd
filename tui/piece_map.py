"""The piece map: a bar of colored cells, as qBittorrent draws one (ok, damaged, healing, unverified)."""

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from .cells import color
from .text import piece_cells, piece_counts

# Glyphs differ too, so the map reads in 16 colors and without color.
GLYPH = {"o": "█", "d": "X", "h": "~", "u": "░"}
TONE = {"o": "success", "d": "error", "h": "warning", "u": "muted"}


class PieceMap(Widget):
    """One char per piece in `pieces` ("o" ok, "d" damaged, "h" healing, "u" unverified)."""

    DEFAULT_CSS = """
    PieceMap { height: 1; }
    """

    pieces: reactive[str] = reactive("", layout=False)

    def render(self) -> Text:
        width = self.size.width
        if not self.pieces:
            return Text("no piece information yet", style="dim")
        colors = self._colors()
        text = Text(no_wrap=True, end="")
        for ch in piece_cells(self.pieces, width):
            style = colors[TONE.get(ch, "muted")]
            text.append(GLYPH.get(ch, "?"), style=f"reverse {style}" if ch == "d" else style)
        return text

    def legend(self) -> Text:
        counts = piece_counts(self.pieces)
        colors = self._colors()
        parts = [f"{len(self.pieces)} pieces   "]
        for ch, name in (("o", "ok"), ("d", "damaged"), ("h", "healing"), ("u", "unverified")):
            parts += [(GLYPH[ch], colors[TONE[ch]]), f" {name} {counts[name]}   "]
        return Text.assemble(*parts)

    def _colors(self) -> dict[str, str]:
        v = self.app.get_css_variables()
        return {"success": color(v, "success", "green"), "error": color(v, "error", "red"),
                "warning": color(v, "warning", "yellow"), "muted": "dim"}
