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
`s` next sort (attention first, name, size, verified, snapshot, qBittorrent) · click a column header to sort ·
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
| ? unreachable | its files are not where qBittorrent says |
| - excluded / removed | by policy / gone from qBittorrent (history kept) |

**Attention first**: damaged, heal failed, unreachable, stopped by seedward, protected but not
seeding, baseline-bad, a suspect snapshot, a failed drill, a coverage gap: these sort to the top
and are counted in the header. A drift that was healed is history: "healed 2h ago".

**Continuity**: *Intact* is the share of the last 7 days the torrent seeded its verified payload
(time stopped by you, or while the service or qBittorrent was down, is not counted; until 7 days
were watched, the header says the time watched: "100 % seeding intact of the 10 s watched"). The header
gives the library's, with its incidents and median heal time; a torrent's screen shows 24 h, 7 d
and 30 d and a 7-day strip: `█` seeding · `▒` stopped by seedward · `X` damaged · `~` healing ·
`?` unreachable · `-` stopped by you · `·` not watched.

Piece map: `█` ok · `X` damaged · `~` healing · `░` unverified.

The TUI is a client of the service: start it with `seedward serve` (without it, it shows the
catalog, read-only). `seedward tui --web` serves it to a browser on this machine.
"""


class HelpScreen(ModalScreen):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss()
