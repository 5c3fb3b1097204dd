"""Torrents, files, segments, pieces, runs and events."""

import json
import sqlite3

from .db_time import now_iso
from .fleet import check_owner, own


def upsert_torrent(cat, meta, *, save_path=None, torrent_file=None, category=None, tags=None,
                   protection=None, policy=None, qbt_state=None) -> None:
    now = now_iso()
    with cat.tx() as db:
        _upsert(cat, db, meta, now, save_path, torrent_file, category, tags, protection, policy, qbt_state)


def _upsert(cat, db, meta, now, save_path, torrent_file, category, tags, protection, policy, qbt_state):
    check_owner(db, cat, meta.id)  # a torrent another service owns is not ours to write (NotOwner)
    db.execute(
        """INSERT INTO torrents (id, info_hash_v1, info_hash_v2, name, kind, piece_length, num_pieces,
               total_size, payload_size, added_at, updated_at, owner)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at, removed_at = NULL""",
        (meta.id, meta.info_hash_v1, meta.info_hash_v2, meta.name, meta.kind, meta.piece_length,
         meta.num_pieces, meta.total_size, meta.payload_size, now, now, cat.owner),
    )
    sets = [(column, str(value)) for column, value in (
        ("save_path", save_path), ("torrent_file", torrent_file), ("category", category), ("tags", tags),
        ("protection", protection), ("policy", policy), ("qbt_state", qbt_state)) if value is not None]
    if sets:  # one statement (a shared catalog is a round trip away)
        db.execute(f"UPDATE torrents SET {', '.join(f'{c} = ?' for c, _ in sets)} WHERE id = ?",
                   (*(v for _, v in sets), meta.id))


def record_scan(cat, result, *, reason: str, save_path=None, torrent_file=None, protection=None,
                keep_baseline: bool = True, **torrent_fields) -> int:
    """Record a full scan in one transaction: torrent, files, segments, pieces, run.

    keep_baseline=False records the run and piece states but keeps the previous file and
    segment hashes (a damaged payload must never become the baseline).
    """
    meta = result.meta
    now = now_iso()
    # one torrent's rows, written only by its owner (whose jobs on one torrent never overlap): no
    # need for the shared catalog's writer lock; the owner check and upserts are row-level
    with cat.tx(serial=False) as db:
        _upsert(cat, db, meta, now, save_path, torrent_file, torrent_fields.get("category"),
                torrent_fields.get("tags"), protection, torrent_fields.get("policy"), torrent_fields.get("qbt_state"))
        if keep_baseline:
            db.execute("DELETE FROM files WHERE torrent_id = ?", (meta.id,))
            db.execute("DELETE FROM segments WHERE torrent_id = ?", (meta.id,))
            db.executemany(
                "INSERT INTO files (torrent_id, file_index, path, size, offset, sha256, v2_root, status, mtime_ns,"
                " inode, device, nlink, ctime_ns, verified_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(meta.id, f.entry.index, f.entry.path, f.entry.size, f.entry.offset, f.sha256,
                  f.v2_root.hex() if f.v2_root else None, f.status,
                  f.stat.mtime_ns if f.stat else None, f.stat.inode if f.stat else None,
                  f.stat.device if f.stat else None, f.stat.nlink if f.stat else None,
                  f.stat.ctime_ns or None if f.stat else None, f.stat.seen_ns or None if f.stat else None)
                 for f in result.files],
            )
            db.executemany(
                "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(meta.id, f.entry.index, s.piece, s.offset, s.length, s.xxh3, s.root.hex() if s.root else None)
                 for f in result.files for s in f.segments],
            )
        bad = set(result.bad_pieces)
        db.execute("DELETE FROM pieces WHERE torrent_id = ?", (meta.id,))
        db.executemany(
            "INSERT INTO pieces VALUES (?, ?, ?, ?)",
            [(meta.id, p, 0 if p in bad else 1, now) for p in _scanned_pieces(meta, result)],
        )
        cur = db.execute(
            "INSERT INTO runs (torrent_id, kind, reason, started_at, seconds, bytes, ok, bad_pieces)"
            " VALUES (?, 'full', ?, ?, ?, ?, ?, ?)",
            (meta.id, reason, now, result.seconds, result.bytes_read, int(result.ok), json.dumps(result.bad_pieces)),
        )
        if result.ok:
            db.execute("UPDATE torrents SET last_verified = ? WHERE id = ?", (now, meta.id))
        return cur.lastrowid


def _scanned_pieces(meta, result):
    """Every piece, or for a scan of some files (the others skipped in qBittorrent) theirs."""
    if len(result.files) == len(meta.real_files):
        return range(meta.num_pieces)
    return sorted({s.piece for f in result.files for s in f.segments})


def get_torrent(cat, torrent_id: str) -> sqlite3.Row | None:
    return cat.one("SELECT * FROM torrents WHERE id = ?", (torrent_id,))


def list_torrents(cat, include_removed: bool = True, *, fleet: bool = False) -> list[sqlite3.Row]:
    """This service's torrents (on a shared catalog; fleet=True: every service's)."""
    where, params = ([], []) if fleet else ([own(cat)[0]], list(own(cat)[1]))
    if not include_removed:
        where.append("removed_at IS NULL")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return cat.query(f"SELECT * FROM torrents {clause} ORDER BY name, id", params)


def get_files(cat, torrent_id: str) -> list[sqlite3.Row]:
    return cat.query("SELECT * FROM files WHERE torrent_id = ? ORDER BY file_index", (torrent_id,))


def get_segments(cat, torrent_id: str, file_index: int | None = None) -> list[sqlite3.Row]:
    if file_index is None:
        return cat.query("SELECT * FROM segments WHERE torrent_id = ? ORDER BY file_index, piece", (torrent_id,))
    return cat.query(
        "SELECT * FROM segments WHERE torrent_id = ? AND file_index = ? ORDER BY piece", (torrent_id, file_index)
    )


def set_protection(cat, torrent_id: str, state: str, **fields) -> None:
    with cat.tx() as db:
        db.execute("UPDATE torrents SET protection = ?, updated_at = ? WHERE id = ?", (state, now_iso(), torrent_id))
        for column, value in fields.items():
            if column not in ("qbt_state", "save_path", "category", "tags", "policy", "torrent_file", "last_verified"):
                raise ValueError(column)
            db.execute(f"UPDATE torrents SET {column} = ? WHERE id = ?", (value, torrent_id))


def mark_removed(cat, torrent_id: str) -> None:
    now = now_iso()
    mine, keys = own(cat)
    with cat.tx() as db:
        db.execute(f"UPDATE torrents SET protection = 'removed', removed_at = ?, updated_at = ? WHERE id = ? AND {mine}",
                   (now, now, torrent_id, *keys))


def add_event(cat, torrent_id: str | None, kind: str, message: str, level: str = "info", **detail) -> int:
    with cat.tx(serial=False) as db:  # one insert
        cur = db.execute(
            "INSERT INTO events (torrent_id, at, kind, level, message, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (torrent_id, now_iso(), kind, level, message, json.dumps(detail, default=str)),
        )
        return cur.lastrowid


def events(cat, torrent_id: str | None = None, limit: int = 200) -> list[sqlite3.Row]:
    if torrent_id:
        return cat.query("SELECT * FROM events WHERE torrent_id = ? ORDER BY id DESC LIMIT ?", (torrent_id, limit))
    return cat.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))
