"""The catalog on PostgreSQL (psycopg 3): the SQL the catalog modules write for SQLite, translated.

The modules keep writing one dialect (SQLite's). `translate` turns a statement into PostgreSQL's:
  ?  :name                      -> %s  %(name)s        (and a literal % -> %%)
  INSERT OR REPLACE / OR IGNORE -> INSERT ... ON CONFLICT (primary key) DO UPDATE / DO NOTHING
  INSERT INTO t VALUES          -> INSERT INTO t (its columns) VALUES  (tables carry a rowid column)
  x IS ?   x IS NOT ?           -> IS NOT DISTINCT FROM / IS DISTINCT FROM
  LIKE                          -> ILIKE               (SQLite's LIKE ignores ASCII case)
  ORDER BY a, b DESC            -> a NULLS FIRST, b DESC NULLS LAST  (SQLite's order of NULLs)
  FROM (SELECT ...) WHERE       -> FROM (SELECT ...) AS _q1 WHERE   (PostgreSQL < 16 needs the alias)
  DDL: INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, BLOB -> BYTEA, TEXT -> TEXT COLLATE "C" (byte
  order, as SQLite compares), `x INTEGER PRIMARY KEY` -> BIGSERIAL, every table gets `rowid BIGSERIAL`
  (SQLite's implicit rowid: insertion order), and `lastrowid` comes from `RETURNING id`.
`json_extract(doc, '$.a')` is a SQL function made at migration (numbers only: what the modules use).
Rows behave like sqlite3.Row (by name or index, dict(row)); numeric sums load as int or float and
booleans as 0/1, as SQLite returns them. Statements are bound client-side (ClientCursor), so
untyped parameters (`? IS NOT NULL`) work as they do in SQLite.
"""

import itertools
import threading

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format

from .pgsql import HIDDEN, for_sqlite, redact, tokens, translate  # noqa: F401 - the translation, re-exported

# -- rows -----------------------------------------------------------------------------------------


class Row:
    """A result row like sqlite3.Row: row["name"], row[0], keys(), dict(row), iteration over values."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict, values: tuple):
        self._index = index
        self._values = values

    def keys(self) -> list[str]:
        return list(self._index)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                lowered = key.lower()
                if lowered in self._index:
                    return self._values[self._index[lowered]]
                raise IndexError(f"no such column: {key}") from None
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other) -> bool:
        return isinstance(other, Row) and self._values == other._values and self.keys() == other.keys()

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"




def row_factory(cursor):
    desc = cursor.description
    if desc is None:
        return tuple
    names = [d.name for d in desc]
    keep = [i for i, n in enumerate(names) if n != HIDDEN] if len(names) > 1 else list(range(len(names)))
    index = {names[i]: k for k, i in enumerate(keep)}
    if len(keep) == len(names):
        return lambda values: Row(index, tuple(values))
    return lambda values: Row(index, tuple(values[i] for i in keep))


class _NumericLoader(Loader):
    """SUM/AVG of integers are numeric in PostgreSQL: give int (or float), as SQLite does."""

    def load(self, data):
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


class _BoolLoader(Loader):
    def load(self, data):
        return 1 if bytes(data) == b"t" else 0


class _BoolAsInt(Dumper):
    """Python booleans stored as SQLite stores them (the columns are integers)."""

    oid = psycopg.adapters.types["int8"].oid
    format = Format.TEXT

    def dump(self, obj):
        return b"1" if obj else b"0"

    def quote(self, obj):
        return self.dump(obj)


def connect(url: str, *, password: str | None = None, connect_timeout: int = 10,
            application_name: str = "seedward") -> psycopg.Connection:
    """One autocommit connection (transactions are explicit), bound client-side, sqlite-like rows."""
    extra = {"password": password} if password else {}
    conn = psycopg.connect(url, **extra, autocommit=True, cursor_factory=psycopg.ClientCursor, row_factory=row_factory,
                           connect_timeout=connect_timeout, application_name=application_name,
                           keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
    conn.adapters.register_loader("numeric", _NumericLoader)
    conn.adapters.register_loader("bool", _BoolLoader)
    conn.adapters.register_dumper(bool, _BoolAsInt)
    return conn


# -- the schema the translation needs ---------------------------------------------------------------


_versions = itertools.count(1)


class Schema:
    """Per table: its columns in order (rowid left out), primary key, and whether `id` is serial."""

    def __init__(self):
        self.columns: dict[str, list[str]] = {}
        self.primary: dict[str, list[str]] = {}
        self.serial: set[str] = set()
        self.version = 0  # translations are cached per version
        self.lock = threading.Lock()

    def load(self, conn) -> None:
        columns: dict[str, list[str]] = {}
        serial = set()
        for r in conn.execute(
                "SELECT table_name, column_name, column_default FROM information_schema.columns"
                " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position").fetchall():
            if r[1] == HIDDEN:
                continue
            columns.setdefault(r[0], []).append(r[1])
            if r[1] == "id" and (r[2] or "").startswith("nextval("):
                serial.add(r[0])
        primary: dict[str, list[str]] = {}
        for r in conn.execute(
                "SELECT tc.table_name, kcu.column_name FROM information_schema.table_constraints tc"
                " JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name"
                " AND kcu.table_schema = tc.table_schema"
                " WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()"
                " ORDER BY tc.table_name, kcu.ordinal_position").fetchall():
            primary.setdefault(r[0], []).append(r[1])
        with self.lock:
            self.columns, self.primary, self.serial = columns, primary, serial
            self.version = next(_versions)  # unique across schemas: the cache key of translations


# -- what the schema needs once ---------------------------------------------------------------------

BOOTSTRAP = [
    # json_extract(doc, '$.a.b') for numbers (what catalog/metrics.py reads from heals.timings)
    """CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS double precision
       LANGUAGE sql IMMUTABLE AS
       $$ SELECT CASE WHEN jsonb_typeof(doc::jsonb #> string_to_array(substr(path, 3), '.')) = 'number'
                 THEN (doc::jsonb #>> string_to_array(substr(path, 3), '.'))::double precision END $$""",
]
