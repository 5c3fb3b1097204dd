"""Keys and states, in one screen."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# seedward

**Dashboard**: `enter` open a torrent · `/` search name or hash · `esc` clear search ·
`f` next filter (all, attention, protected, damaged, healing, unprotected, removed) ·
`s` next sort (protection, name, size, verified, snapshot, qBittorrent) · click a column header to sort ·
`r` refresh

**Torrent**: `v` verify now · `n` snapshot now · `h` heal · `d` restore drill ·
`p` stop / `s` start in qBittorrent (each asks first, then shows its progress) · `r` reload · `esc` back

**Anywhere**: `a` alerts · `j` jobs · `t` light/dark · `?` this help · `q` quit

## States
| state | meaning |
|---|---|
| ✔ protected | verified against its torrent; snapshot when the policy asks |
| ✖ damaged | drift found: the payload no longer matches |
| ⟳ healing | damaged pieces are being written back |
| … pending | known, not yet verified |
| ✖ baseline-bad | the payload never matched its own torrent |
| - excluded / removed | by policy / gone from qBittorrent (history kept) |

Piece map: `█` ok · `X` damaged · `~` healing · `░` unverified.

The TUI is a client of the service: start it with `seedward serve`.
"""


class HelpScreen(ModalScreen):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss()
