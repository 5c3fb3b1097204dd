"""The dashboard's table: only the rows on screen are drawn (Textual's line API, `render_line`),
so 20,000 or 100,000 torrents cost what 40 do to show, filter, sort or update.

The table holds the ordered row keys and asks `cells(key)` for a row's cells (plain `(text,
tone)` pairs, see cells.py) only when the row comes on screen; a changed row is redrawn by key.
Text is never parsed as markup: a name with `[FLAC]` in it is shown as it is. The header stays
on the top line; the cursor follows its torrent (by key) when the rows are sorted again.
"""

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


class TorrentTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    TorrentTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        & > .torrent-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .torrent-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .torrent-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .torrent-table--even-row { background: $surface-darken-1 40%; }
        & > .torrent-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .torrent-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    COMPONENT_CLASSES = {"torrent-table--header", "torrent-table--even-row", "torrent-table--cursor"}
    BINDINGS = [
        Binding("enter", "select", "Open", show=False),
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,ctrl+home", "edge(0)", "Top", show=False),
        Binding("end,ctrl+end", "edge(1)", "Bottom", show=False),
    ]

    class Selected(Message):
        """A row was chosen (enter, or a click on the cursor's row)."""

        def __init__(self, table: "TorrentTable", key: str):
            super().__init__()
            self.table, self.key = table, key

    class HeaderClicked(Message):
        def __init__(self, table: "TorrentTable", column: str):
            super().__init__()
            self.table, self.column = table, column

    def __init__(self, columns, cells, *, tones=None, **kwargs):
        """columns: [(key, label, width)]; cells(key) -> [(text, tone)] in column order; tones:
        tone -> rich style text (cells.palette)."""
        super().__init__(**kwargs)
        self.columns = list(columns)
        self.cells = cells
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self._segments: dict[str, list] = {}  # rendered cells per key (the cursor/zebra style goes on top)
        self.cursor = 0
        self._tones: dict[str, Style] = {}
        self.set_tones(tones or {})
        self.width_total = sum(w + 2 for _, _, w in self.columns)

    # -- data --

    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def cursor_key(self) -> str | None:
        return self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None

    def set_tones(self, tones: dict[str, str]) -> None:
        self._tones = {tone: Style.parse(style) if style else Style() for tone, style in tones.items()}
        self._segments.clear()
        self.refresh()

    def set_rows(self, keys: list[str], keep: str | None = None) -> None:
        """Show these rows, in this order; the cursor stays on `keep` (default: its torrent) if shown."""
        keep = self.cursor_key if keep is None else keep
        self.keys = list(keys)
        self._index = {k: i for i, k in enumerate(self.keys)}
        self._segments = {k: v for k, v in self._segments.items() if k in self._index}
        self.virtual_size = Size(self.width_total, len(self.keys) + 1)
        self.cursor = self._index.get(keep, min(self.cursor, max(0, len(self.keys) - 1)))
        self.refresh()
        self.call_after_refresh(self.scroll_to_cursor)

    def refresh_rows(self, keys) -> None:
        """These rows' cells changed: drawn again if on screen."""
        for key in keys:
            self._segments.pop(key, None)
            i = self._index.get(key)
            if i is not None:
                y = i - int(self.scroll_offset.y) + 1
                if 1 <= y < self.size.height:
                    self.refresh_line(y)

    def forget_cells(self) -> None:
        """Every row's cells may have changed (ages, theme): drawn again as they come on screen."""
        self._segments.clear()
        self.refresh()

    def get_cell(self, key: str, column: str) -> str:
        """The text a row shows in a column (tests and tools)."""
        at = [c[0] for c in self.columns].index(column)
        return self.cells(key)[at][0]

    def row_index(self, key: str) -> int | None:
        return self._index.get(key)

    # -- drawing --

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            strip = self._header()
        else:
            i = int(scroll_y) + y - 1
            if i >= len(self.keys):
                return Strip.blank(width, self.rich_style)
            strip = self._row(i)
        return strip.crop(int(scroll_x), int(scroll_x) + width).extend_cell_length(width, self.rich_style)

    def _header(self) -> Strip:
        style = self.get_component_rich_style("torrent-table--header")
        return Strip([Segment(" " + _fit(label, width) + " ", style) for _, label, width in self.columns],
                     self.width_total)

    def _row(self, i: int) -> Strip:
        key = self.keys[i]
        cells = self._segments.get(key)
        if cells is None:
            cells = [(" " + _fit(text, width) + " ", self._tones.get(tone) or Style())
                     for (text, tone), (_, _, width) in zip(self.cells(key), self.columns)]
            self._segments[key] = cells
        if i == self.cursor:
            base = self.get_component_rich_style("torrent-table--cursor")
            return Strip([Segment(text, base) for text, _ in cells], self.width_total)
        base = self.get_component_rich_style("torrent-table--even-row") if i % 2 else self.rich_style
        return Strip([Segment(text, base + tone) for text, tone in cells], self.width_total)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()

    # -- moving --

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def move_cursor(self, index: int) -> None:
        if not self.keys:
            return
        old, self.cursor = self.cursor, max(0, min(index, len(self.keys) - 1))
        for i in {old, self.cursor}:
            y = i - int(self.scroll_offset.y) + 1
            if 1 <= y < self.size.height:
                self.refresh_line(y)
        self.scroll_to_cursor()

    def move_to(self, key: str) -> None:
        if key in self._index:
            self.move_cursor(self._index[key])

    def scroll_to_cursor(self) -> None:
        top, h = int(self.scroll_offset.y), self._body_height()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False)

    def action_move(self, step: int) -> None:
        self.move_cursor(self.cursor + step)

    def action_page(self, step: int) -> None:
        self.move_cursor(self.cursor + step * self._body_height())

    def action_edge(self, end: int) -> None:
        self.move_cursor(len(self.keys) - 1 if end else 0)

    def action_select(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.Selected(self, self.cursor_key))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            x = offset.x + int(self.scroll_offset.x)
            for key, _, width in self.columns:
                if x < width + 2:
                    self.post_message(self.HeaderClicked(self, key))
                    return
                x -= width + 2
            return
        i = int(self.scroll_offset.y) + offset.y - 1
        if 0 <= i < len(self.keys):
            if i == self.cursor:
                self.action_select()
            else:
                self.move_cursor(i)


def _fit(text: str, width: int) -> str:
    """Exactly `width` cells: cut with an ellipsis, or padded (wide characters counted as two)."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"
