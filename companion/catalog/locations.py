"""Following a torrent's files when qBittorrent renames or moves them (no re-hash)."""

from .db_time import now_iso


def relocate(cat, torrent_id: str, save_path: str, files: dict[int, tuple]) -> None:
    """New save path and, per file index, (path, FileStat) of files whose content is unchanged."""
    now = now_iso()
    with cat.tx() as db:
        db.execute("UPDATE torrents SET save_path = ?, updated_at = ? WHERE id = ?", (save_path, now, torrent_id))
        db.executemany(
            "UPDATE files SET path = ?, mtime_ns = ?, inode = ?, device = ?, nlink = ?, ctime_ns = NULL,"
            " verified_ns = NULL WHERE torrent_id = ? AND file_index = ?",
            [(path, st.mtime_ns, st.inode, st.device, st.nlink, torrent_id, index)
             for index, (path, st) in files.items()],
        )


def set_qbt_fields(cat, torrent_id: str, **fields) -> None:
    """Update what qBittorrent says about a torrent (qbt_state, category, tags, policy)."""
    allowed = {"qbt_state", "category", "tags", "policy"}
    with cat.tx() as db:
        for column, value in fields.items():
            if column not in allowed:
                raise ValueError(column)
            db.execute(f"UPDATE torrents SET {column} = ? WHERE id = ?", (value, torrent_id))
