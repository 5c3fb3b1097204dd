"""A DataTable tuned for thousands of rows with fixed-width columns.

DataTable measures every cell of every new row to size auto-width columns, and re-evaluates the
cursor per added row: with 10,000 torrents that is seconds of UI-thread work per filter change.
Every column here has a fixed width, so measuring is skipped and rows are added in one batch
(this leans on DataTable's attributes, not only its API: checked by the 10,000-row test, with add_row
as the fallback when a Textual lacks them; Row and RowKey come from the public textual.widgets.data_table).
"""

from itertools import zip_longest

from textual.widgets import DataTable
from textual.widgets.data_table import Row, RowKey


class TorrentTable(DataTable):
    def _update_dimensions(self, new_rows) -> None:
        if all(not c.auto_width for c in self.columns.values()) and not self._labelled_row_exists:
            new_rows = ()  # fixed widths, height-1 rows: nothing to measure
        super()._update_dimensions(new_rows)

    def add_rows_keyed(self, rows) -> None:
        """Append [(key, cells)] at once: one cursor update and one layout pass for the whole batch."""
        if not all(hasattr(self, name) for name in ("_row_locations", "_data", "_new_rows", "_update_count")):
            for key, cells in rows:  # another Textual inside: the public, slower way
                self.add_row(*cells, key=key)
            return
        columns = self.ordered_columns
        index = self.row_count
        for key, cells in rows:
            row_key = RowKey(key)
            if row_key in self._row_locations:
                raise ValueError(f"row {key!r} is already in the table")
            self._row_locations[row_key] = index
            self._data[row_key] = {column.key: cell for column, cell in zip_longest(columns, cells)}
            self.rows[row_key] = Row(row_key, 1, None, False)
            self._new_rows.add(row_key)
            index += 1
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        if self.row_count and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self._update_count += 1
        self.check_idle()
