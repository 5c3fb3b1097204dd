"""The connections behind a Catalog, as the catalog modules use them (`db.execute(...)`,
`executemany`, `fetchone/fetchall/lastrowid/rowcount`): SQLite's own, and PostgreSQL's through
psycopg with every statement translated (catalog/pgsql.py)."""

import sqlite3

from .pgsql import for_sqlite, redact, translate  # pure Python: SQLite-only use never loads psycopg


class _SqliteDb:
    """The SQLite connection as the modules use it, with the PostgreSQL-only clauses dropped."""

    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw

    def execute(self, sql: str, params=()):
        return self.raw.execute(for_sqlite(sql), params)

    def executemany(self, sql: str, seq):
        return self.raw.executemany(for_sqlite(sql), seq)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def close(self) -> None:
        self.raw.close()

    def __getattr__(self, name):
        return getattr(self.raw, name)


class _PgCursor:
    __slots__ = ("cur", "lastrowid")

    def __init__(self, cur, lastrowid=None):
        self.cur, self.lastrowid = cur, lastrowid

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount

    def fetchone(self):
        return self.cur.fetchone() if self.cur.description is not None else None

    def fetchall(self):
        return self.cur.fetchall() if self.cur.description is not None else []

    def __iter__(self):
        return iter(self.fetchall())


class _PgDb:
    """A psycopg connection that takes the modules' SQLite statements (translated, catalog/pg.py)."""

    def __init__(self, raw, schema):
        self.raw = raw
        self.schema = schema

    def execute(self, sql: str, params=()):
        t = translate(sql, self.schema)
        cur = self.raw.execute(t.sql, _params(params))
        if t.returning_id:
            row = cur.fetchone()
            return _PgCursor(cur, row[0] if row is not None else None)
        return _PgCursor(cur)

    def executemany(self, sql: str, seq):
        t = translate(sql, self.schema)
        cur = self.raw.cursor()
        cur.executemany(t.many, [_params(p) for p in seq])
        return _PgCursor(cur)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        if self.raw.broken or self.raw.closed:
            return False
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def _params(params):
    """sqlite3 takes any sequence or mapping; psycopg wants a list/tuple or dict."""
    if isinstance(params, dict) or hasattr(params, "keys"):
        return dict(params)
    return tuple(params)


def _pg_message(exc) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return redact(text)
