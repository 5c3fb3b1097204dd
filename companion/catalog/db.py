"""Connection, migrations and the Catalog facade."""

import importlib
import pkgutil
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from ..errors import Ambiguous, DiskFull, Error, NotFound, free_bytes, is_disk_full
from . import schema
from .db_time import now_iso


class CatalogError(Error):
    """catalog {}: {}"""




def _load_migrations() -> dict[int, str]:
    """Import every module of the package: each registers its own migrations."""
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{mod.name}")
    return schema.MIGRATIONS


class Catalog:
    """The catalog database. Thread-safe: one connection, guarded by a lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.RLock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise self._full(exc) or CatalogError(self.path, str(exc)) from exc

    def migrate(self) -> None:
        migrations = _load_migrations()
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
        for version in sorted(migrations):
            if version in done:
                continue
            with self.tx() as db:
                for statement in _statements(migrations[version]):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, now_iso()))

    @contextmanager
    def tx(self):
        """One IMMEDIATE transaction: all or nothing. A full disk raises DiskFull (nothing written)."""
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    if self.db.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL)
                        self.db.execute("ROLLBACK")
                    raise
                else:
                    self.db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise self._full(exc) or exc

    def query(self, sql: str, params=()) -> list[sqlite3.Row]:
        with self.lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise self._full(exc) or exc

    def one(self, sql: str, params=()) -> sqlite3.Row | None:
        with self.lock:
            try:
                return self.db.execute(sql, params).fetchone()
            except sqlite3.OperationalError as exc:
                raise self._full(exc) or exc

    def _full(self, exc) -> DiskFull | None:
        """A write on a full disk: DiskFull naming the catalog and what a write may need (SQLite logs
        changes ahead, up to its checkpoint size, before they reach the database file)."""
        io_error = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_IOERR")
        if not is_disk_full(exc) and not (io_error and (free_bytes(self.path) or 0) < (1 << 20)):
            return None
        try:
            page = self.db.execute("PRAGMA page_size").fetchone()[0]
            pages = self.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        except (sqlite3.Error, AttributeError):
            page, pages = 4096, 1000
        return DiskFull(self.path, page * max(pages, 256))

    def resolve_id(self, prefix: str, include_removed: bool = True) -> str:
        """Any unique prefix of a torrent id, v1 or v2 info hash, as git does."""
        prefix = prefix.strip().lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            raise NotFound(f"{prefix!r} is not a torrent id (hex digits expected)")
        like = prefix + "%"
        rows = self.query(
            "SELECT id FROM torrents WHERE id LIKE ? OR info_hash_v1 LIKE ? OR info_hash_v2 LIKE ?",
            (like, like, like),
        )
        ids = sorted({r["id"] for r in rows})
        if not ids:
            raise NotFound(f"no torrent in the catalog matches {prefix!r}")
        if len(ids) > 1:
            raise Ambiguous(f"{prefix!r} matches {len(ids)} torrents: {', '.join(i[:12] for i in ids[:5])}")
        return ids[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # Table helpers live in their own modules; they are bound here for callers' convenience.
    from .torrents import (  # noqa: E402
        add_event,
        events,
        get_files,
        get_segments,
        get_torrent,
        list_torrents,
        mark_removed,
        record_scan,
        set_protection,
        upsert_torrent,
    )
    from .queue import enqueue, claim, finish, requeue_running, pending_jobs  # noqa: E402


def _statements(sql: str) -> list[str]:
    out, cur = [], []
    for line in sql.splitlines():
        cur.append(line)
        joined = "\n".join(cur)
        if joined.strip().endswith(";") and sqlite3.complete_statement(joined):
            out.append(joined)
            cur = []
    if "\n".join(cur).strip():
        out.append("\n".join(cur))
    return out


def open_catalog(path: Path) -> Catalog:
    return Catalog(path)
