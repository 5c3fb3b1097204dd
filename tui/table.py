"""The status table `seedward tui` prints when stdout is not a terminal (plain text, pure)."""

from datetime import datetime

from .cells import COLUMNS, fit, row_cells
from .model import Status, totals, visible
from .text import headline


def status_table(status: Status, now: datetime) -> str:
    svc = status.service
    tot = totals(status.torrents.values())
    lines = []
    if not svc.running:
        lines.append("service: not running (start it with `seedward serve`); showing the catalog")
    else:
        qbt = {True: "connected", False: f"unreachable ({svc.qbt_error or svc.qbt_state})", None: "unknown"}
        lines.append(f"service: running   qBittorrent: {qbt[svc.qbt_connected]}")
    lines.append(f"{tot.torrents} torrents: {tot.protected} protected, {tot.damaged} damaged, {tot.healing} healing, "
                 f"{tot.unprotected} unprotected; {tot.attention} need attention")
    lines.append(f"continuity: {headline(status.continuity)}")
    if not status.torrents:
        lines.append("no torrents yet")
        return "\n".join(lines) + "\n"
    widths = [w for _, _, w in COLUMNS]
    lines.append("  ".join(label.ljust(w) for (_, label, _), w in zip(COLUMNS, widths)).rstrip())
    for t in visible(status.torrents.values(), "all", "", "protection"):
        cells = [text for text, _ in row_cells(t, now)]
        lines.append("  ".join(fit(c, w).ljust(w) for c, w in zip(cells, widths)).rstrip())
    return "\n".join(lines) + "\n"
