"""Where a torrent is (issue 17): which qBittorrent instance holds it, and the torrents whose payload
this host cannot reach (`unreachable`), with the state each had before, for the way back."""

from .db_time import now_iso
from .fleet import own
from .schema import migration

migration(
    1702,
    """
-- the instance of this service whose qBittorrent holds the torrent ('' = the one instance);
-- several instances holding it: the first in the config's order that reaches its payload
ALTER TABLE torrents ADD COLUMN instance TEXT NOT NULL DEFAULT '';

CREATE TABLE unreachable (
    torrent_id TEXT PRIMARY KEY REFERENCES torrents(id) ON DELETE CASCADE,
    since TEXT NOT NULL,
    save_path TEXT NOT NULL,
    reason TEXT NOT NULL,
    previous TEXT NOT NULL     -- the protection state before it became unreachable
);
""",
)


def mark_unreachable(cat, torrent_id: str, save_path: str, reason: str) -> bool:
    """Record the torrent as unreachable (keeping when and from what state it first was). Returns
    True when it was not unreachable before."""
    now = now_iso()
    with cat.tx() as db:
        row = db.execute("SELECT protection FROM torrents WHERE id = ?", (torrent_id,)).fetchone()
        if row is None:
            return False
        before = db.execute("SELECT previous FROM unreachable WHERE torrent_id = ?", (torrent_id,)).fetchone()
        if before is None:
            previous = row["protection"] if row["protection"] != "unreachable" else "pending"
            db.execute("INSERT INTO unreachable (torrent_id, since, save_path, reason, previous) VALUES (?, ?, ?, ?, ?)",
                       (torrent_id, now, str(save_path), reason, previous))
        else:
            db.execute("UPDATE unreachable SET save_path = ?, reason = ? WHERE torrent_id = ?",
                       (str(save_path), reason, torrent_id))
        db.execute("UPDATE torrents SET protection = 'unreachable', save_path = ?, updated_at = ? WHERE id = ?",
                   (str(save_path), now, torrent_id))
    return before is None or row["protection"] != "unreachable"


def clear_unreachable(cat, torrent_id: str) -> str | None:
    """The torrent is reachable again: its record goes; returns the state it had before (or None)."""
    with cat.tx() as db:
        before = db.execute("SELECT previous FROM unreachable WHERE torrent_id = ?", (torrent_id,)).fetchone()
        db.execute("DELETE FROM unreachable WHERE torrent_id = ?", (torrent_id,))
        return before["previous"] if before else None


def unreachable_entries(cat) -> dict[str, dict]:
    """torrent id -> {since, save_path, reason, previous} (every torrent on the catalog; for status)."""
    return {r["torrent_id"]: {"since": r["since"], "save_path": r["save_path"], "reason": r["reason"],
                              "previous": r["previous"]}
            for r in cat.query("SELECT u.* FROM unreachable u JOIN torrents t ON t.id = u.torrent_id"
                               " WHERE t.protection = 'unreachable'")}


def unreachable_torrents(cat) -> list:
    """This service's torrents that are unreachable now: id, save_path, instance."""
    mine, keys = own(cat, "t")
    return cat.query("SELECT t.id, t.save_path, t.instance, t.name FROM torrents t WHERE t.protection = 'unreachable'"
                     f" AND t.removed_at IS NULL AND {mine} ORDER BY t.id", keys)


def watched_save_paths(cat, states=("protected", "damaged", "healing")) -> dict[str, list[str]]:
    """save path -> this service's torrents there with a baseline (for the watch on folders that go away)."""
    mine, keys = own(cat, "t")
    marks = ",".join("?" * len(states))
    out: dict[str, list[str]] = {}
    for r in cat.query(f"SELECT t.id, t.save_path FROM torrents t WHERE t.protection IN ({marks})"
                       f" AND t.removed_at IS NULL AND t.save_path IS NOT NULL AND {mine}", (*states, *keys)):
        out.setdefault(r["save_path"], []).append(r["id"])
    return out


def file_devices(cat, torrent_id: str) -> tuple[set, list[str]]:
    """({st_dev of its cataloged files}, [their paths relative to the save path])."""
    rows = cat.query("SELECT path, device FROM files WHERE torrent_id = ? ORDER BY file_index", (torrent_id,))
    return {r["device"] for r in rows if r["device"] is not None}, [r["path"] for r in rows]


def set_instance(cat, torrent_id: str, instance: str) -> None:
    with cat.tx(serial=False) as db:  # one row
        db.execute("UPDATE torrents SET instance = ? WHERE id = ? AND instance != ?", (instance, torrent_id, instance))


def instances(cat) -> dict[str, str]:
    """torrent id -> instance, for this service's torrents in qBittorrent."""
    mine, keys = own(cat)
    return {r["id"]: r["instance"] for r in cat.query(f"SELECT id, instance FROM torrents WHERE removed_at IS NULL AND {mine}",
                                                      keys)}
