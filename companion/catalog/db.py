"""Connection, migrations and the Catalog facade: one engine layer over SQLite (the embedded default,
a file in the state home) or PostgreSQL (`[catalog] url`, shared by several seedward services).

Catalog modules write SQLite's SQL and call `cat.tx()`, `cat.query()`, `cat.one()`; on PostgreSQL
the statements are translated (catalog/pg.py) and `tx()` holds a fleet-wide writer lock for the
transaction, so a module's check-then-write is as safe across hosts as SQLite's BEGIN IMMEDIATE.
`tx(serial=False)` skips that lock for single-row paths that lock their own rows (the queue claim,
`FOR UPDATE SKIP LOCKED`; the clause is dropped on SQLite, where a write holds the database).
"""

import importlib
import logging
import pkgutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import Ambiguous, DiskFull, Error, NotFound, free_bytes, is_disk_full
from . import schema
from .connections import _PgDb, _SqliteDb, _pg_message
from .db_time import now_iso

log = logging.getLogger(__name__)

WRITER_LOCK = 0x5EED_CA7A  # pg_advisory_xact_lock key: the catalog's one writer at a time
RECONNECT_SECONDS = 30.0  # a lost PostgreSQL connection is retried this long before an error


class CatalogError(Error):
    """catalog {}: {}"""


def is_url(target) -> bool:
    return isinstance(target, str) and target.split(":", 1)[0] in ("postgresql", "postgres")


def _load_migrations() -> dict[int, str]:
    """Import every module of the package: each registers its own migrations."""
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{mod.name}")
    return schema.MIGRATIONS


class Catalog:
    """The catalog database. Thread-safe: one connection, guarded by a lock.

    target: the SQLite file (a path) or a `postgresql://` URL. owners: the owner keys of the
    qBittorrent instances this process serves ("" in the embedded single-host mode; on a shared
    catalog the host's name, "<host>/<instance>" for more instances): rows it writes carry
    `owner` (the first key), the lists it acts on read only its own (catalog/fleet.py).
    readonly: PostgreSQL only (SQLite's read-only opener is views.ReadOnly): no migration, no write."""

    def __init__(self, target, *, owners=("",), password: str | None = None, readonly: bool = False):
        self.owners = tuple(owners) or ("",)
        self.owner = self.owners[0]
        self.lock = threading.RLock()
        if is_url(target):
            self.engine = "postgresql"
            self.url = target
            self.path = None
            self.where = _pg().redact(target)
            self._password = password
            self._readonly = readonly
            self.schema = _pg().Schema()
            self.db = None
            self._connect_pg()
            try:
                if not readonly:
                    self.migrate()
                self.schema.load(self.db.raw)
            except Exception:
                self.close()
                raise
            return
        self.engine = "sqlite"
        self.url = None
        self.path = Path(target)
        self.where = str(self.path)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db = _SqliteDb(self.db)
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise self._full(exc) or CatalogError(self.path, str(exc)) from exc

    def migrate(self) -> None:
        migrations = _load_migrations()
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            if self.engine == "postgresql":
                for statement in _pg().BOOTSTRAP:
                    db.raw.execute(statement)
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
        if self.engine == "postgresql":
            self.schema.load(self.db.raw)
        for version in sorted(migrations):
            if version in done:
                continue
            with self.tx() as db:
                # another service sharing the catalog may have applied it meanwhile
                if db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
                    continue
                for statement in _statements(migrations[version]):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, now_iso()))
            if self.engine == "postgresql":
                self.schema.load(self.db.raw)

    @contextmanager
    def tx(self, serial: bool = True):
        """One transaction: all or nothing. SQLite: BEGIN IMMEDIATE (a full disk raises DiskFull,
        nothing written). PostgreSQL: with the fleet-wide writer lock unless serial=False."""
        if self.engine == "postgresql":
            with self._pg_tx(serial) as db:
                yield db
            return
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
        if self.engine == "postgresql":
            return self._pg_read(sql, params, all_rows=True)
        with self.lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise self._full(exc) or exc

    def one(self, sql: str, params=()) -> sqlite3.Row | None:
        if self.engine == "postgresql":
            return self._pg_read(sql, params, all_rows=False)
        with self.lock:
            try:
                return self.db.execute(sql, params).fetchone()
            except sqlite3.OperationalError as exc:
                raise self._full(exc) or exc

    # -- PostgreSQL ---------------------------------------------------------------------------

    def _connect_pg(self) -> None:
        pg = _pg()
        import psycopg

        try:
            raw = pg.connect(self.url, password=self._password)
            raw.execute("SET TIME ZONE 'UTC'")
            raw.execute("SET lock_timeout = '60s'")  # the writer lock, a row lock: then an error, not a hang
            # a service that dies or hangs inside a transaction must not hold the fleet's writer lock
            raw.execute("SET idle_in_transaction_session_timeout = '120s'")
            if self._readonly:
                raw.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raise CatalogError(self.where, _pg_message(exc)) from exc
        old, self.db = self.db, _PgDb(raw, self.schema)
        if old is not None:
            old.close()
        for fn in list(getattr(self, "on_connect", ())):
            fn(self)

    def _pg_alive(self, exc) -> bool:
        """After an error: is the connection still usable? If not, reconnect (bounded)."""
        if not self.db.raw.broken and not self.db.raw.closed:
            return True
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay = 0.2
        while True:
            try:
                self._connect_pg()
                log.warning("catalog %s: connection lost (%s); reconnected", self.where, _pg_message(exc))
                return False
            except CatalogError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _pg_read(self, sql: str, params, all_rows: bool):
        import psycopg

        with self.lock:
            for attempt in (0, 1):
                try:
                    cur = self.db.execute(sql, params)
                    return cur.fetchall() if all_rows else cur.fetchone()
                except psycopg.Error as exc:
                    if self.db.in_transaction:  # a read inside a tx: the tx decides
                        raise CatalogError(self.where, _pg_message(exc)) from exc
                    if self._pg_alive(exc) or attempt:
                        raise CatalogError(self.where, _pg_message(exc)) from exc

    @contextmanager
    def _pg_tx(self, serial: bool):
        import psycopg

        with self.lock:
            for attempt in (0, 1):
                try:
                    # one round trip: the transaction and (serial) the writer lock
                    self.db.raw.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})" if serial else "BEGIN")
                    break
                except psycopg.Error as exc:
                    self._pg_rollback()
                    if self._pg_alive(exc) or attempt:
                        raise CatalogError(self.where, _pg_message(exc)) from exc
            try:
                yield self.db
            except BaseException as exc:
                self._pg_rollback()
                if isinstance(exc, psycopg.Error):
                    raise CatalogError(self.where, _pg_message(exc)) from exc
                raise
            else:
                try:
                    self.db.raw.execute("COMMIT")
                except psycopg.Error as exc:
                    self._pg_rollback()
                    raise CatalogError(self.where, f"commit failed: {_pg_message(exc)}") from exc

    def _pg_rollback(self) -> None:
        import psycopg

        try:
            if not self.db.raw.broken and not self.db.raw.closed:
                self.db.raw.execute("ROLLBACK")
        except psycopg.Error:
            pass

    def backup(self, dest) -> None:
        """A consistent copy of the whole catalog as an SQLite file (SQLite's online backup; from
        PostgreSQL, every table copied in one read-only snapshot into a fresh SQLite catalog)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.engine == "sqlite":
            target = sqlite3.connect(dest)
            try:
                with self.lock:
                    self.db.raw.backup(target)
            finally:
                target.close()
            return
        from .copy import copy_catalog

        copy_catalog(self, dest)

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
            if self.db is not None:
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


def _pg():
    from . import pg

    return pg


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


def catalog_for(home, settings, **kwargs) -> Catalog:
    """The catalog the settings name: `[catalog] url` (PostgreSQL, shared), else the home's file."""
    cs = settings.catalog
    cat = Catalog(cs.target(home), owners=cs.owners(), password=cs.password(), **kwargs)
    cat.heartbeat_seconds = cs.heartbeat_seconds  # the fleet's pace (catalog/fleet.py)
    return cat
