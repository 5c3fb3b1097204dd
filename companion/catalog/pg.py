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
import re
import threading
from functools import lru_cache

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format

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


HIDDEN = "rowid"  # the column standing in for SQLite's implicit rowid: not part of `SELECT *`


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


# -- translation ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<param>\?|:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<op>\|\||<=|>=|<>|!=|==|[(),;.*+\-/%<>=])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)

_ENDS_ORDER = {"LIMIT", "OFFSET", "FOR", "UNION", "EXCEPT", "INTERSECT", "WINDOW", "FETCH"}
_AFTER_SUBQUERY = {"WHERE", "GROUP", "ORDER", "LIMIT", "OFFSET", "JOIN", "LEFT", "RIGHT", "INNER", "CROSS",
                   "FULL", "ON", "UNION", "EXCEPT", "INTERSECT", "HAVING", "WINDOW", "FOR"}
# Column names SQLite takes that PostgreSQL reserves: quoted where they are not the keyword.
_RESERVED_NAMES = {"OFFSET", "FULL", "VERBOSE", "FREEZE", "ANALYSE", "ANALYZE", "USER", "SIMILAR", "ILIKE"}
_DDL_TYPES = {"INTEGER": "BIGINT", "INT": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA",
              "TEXT": 'TEXT COLLATE "C"'}


class Tok:
    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str):
        self.kind, self.text = kind, text

    @property
    def up(self) -> str:
        return self.text.upper() if self.kind == "ident" else self.text

    def __repr__(self) -> str:
        return f"{self.kind}:{self.text}"


def tokens(sql: str) -> list[Tok]:
    return [Tok(m.lastgroup, m.group()) for m in _TOKEN.finditer(sql)]


def _sig(toks: list[Tok]) -> list[int]:
    """Indices of the significant tokens (no whitespace or comments)."""
    return [i for i, t in enumerate(toks) if t.kind not in ("ws", "comment")]


def _match(toks: list[Tok], sig: list[int], k: int) -> int:
    """The position in `sig` of the parenthesis closing the one at sig[k]."""
    depth = 0
    for j in range(k, len(sig)):
        text = toks[sig[j]].text
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(sig) - 1


class Translation:
    """`sql` for execute (with RETURNING id when the table has a serial id), `many` for executemany."""

    __slots__ = ("sql", "many", "returning_id")

    def __init__(self, sql: str, many: str, returning_id: bool):
        self.sql, self.many, self.returning_id = sql, many, returning_id


_cache: dict = {}
_cache_lock = threading.Lock()


def translate(sql: str, schema: Schema) -> Translation:
    """PostgreSQL's statement for one SQLite statement (cached per schema version)."""
    key = schema.version
    with _cache_lock:
        hit = _cache.get((sql, key))
    if hit is not None:
        return hit
    out = _do_translate(sql, schema)
    with _cache_lock:
        if len(_cache) > 8192:
            _cache.clear()
        _cache[(sql, key)] = out
    return out


def _do_translate(sql: str, schema: Schema) -> Translation:
    toks = tokens(sql)
    sig = _sig(toks)
    words = [toks[i].up for i in sig]
    first = words[0] if words else ""
    ddl = first in ("CREATE", "ALTER") and len(words) > 1 and words[1] in ("TABLE", "TEMP", "TEMPORARY")
    table = None
    returning_id = False
    suffix = ""
    subqueries = 0
    inserts: dict[int, str] = {}  # sig position -> text inserted after that token
    replace: dict[int, str] = {}  # token index -> new text

    limit_seen = False
    for k, i in enumerate(sig):
        t = toks[i]
        if t.kind != "ident":
            continue
        if t.up == "LIMIT":
            limit_seen = True
        elif t.up in _RESERVED_NAMES and not _is_keyword(toks, sig, words, k, limit_seen):
            replace[i] = f'"{t.text.lower()}"'

    if ddl:
        for k, i in enumerate(sig):
            t = toks[i]
            if t.kind != "ident":
                continue
            up = t.up
            if up in ("INTEGER", "INT") and words[k + 1:k + 3] == ["PRIMARY", "KEY"]:
                replace[i] = "BIGSERIAL"
            elif up in _DDL_TYPES and k > 0 and toks[sig[k - 1]].kind in ("ident", "qident"):
                replace[i] = _DDL_TYPES[up]
        if first == "CREATE" and "TABLE" in words[:3]:
            open_k = words.index("(") if "(" in words else None
            if open_k is not None:
                close_k = _match(toks, sig, open_k)
                inserts[close_k - 1] = f", {HIDDEN} BIGSERIAL"
    else:
        k = 0
        while k < len(sig):
            i = sig[k]
            t = toks[i]
            up = t.up
            if t.kind == "ident" and up == "INSERT" and k == 0:
                j = 1
                if words[1:3] in (["OR", "REPLACE"], ["OR", "IGNORE"]):
                    mode = words[2]
                    replace[sig[1]] = ""
                    replace[sig[2]] = ""
                    j = 3
                else:
                    mode = None
                if words[j:j + 1] == ["INTO"]:
                    table = toks[sig[j + 1]].text.strip('"')
                    cols = schema.columns.get(table)
                    after = words[j + 2] if j + 2 < len(words) else ""
                    if after in ("VALUES", "SELECT") and cols:
                        inserts[j + 1] = f" ({', '.join(_q(c) for c in cols)})"
                    if mode == "IGNORE":
                        suffix = " ON CONFLICT DO NOTHING"
                    elif mode == "REPLACE":
                        pk = schema.primary.get(table) or []
                        rest = [c for c in (cols or []) if c not in pk]
                        if pk and rest:
                            sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in rest)
                            suffix = f" ON CONFLICT ({', '.join(_q(c) for c in pk)}) DO UPDATE SET {sets}"
                        else:
                            suffix = " ON CONFLICT DO NOTHING"
                    returning_id = table in schema.serial and "RETURNING" not in words
                k = j + 1
                continue
            if t.kind == "param":
                if t.text == "?":
                    replace[i] = "%s"
                else:
                    replace[i] = f"%({t.text[1:]})s"
                if k >= 2 and words[k - 1] == "IS":
                    replace[sig[k - 1]] = "IS NOT DISTINCT FROM"
                elif k >= 3 and words[k - 1] == "NOT" and words[k - 2] == "IS":
                    replace[sig[k - 2]] = "IS DISTINCT FROM"
                    replace[sig[k - 1]] = ""
            elif t.kind == "ident" and up == "LIKE":
                replace[i] = "ILIKE"
            elif t.kind == "ident" and up == "ORDER" and k + 1 < len(sig) and words[k + 1] == "BY":
                _order_nulls(toks, sig, words, k + 2, inserts)
            elif (t.kind == "ident" and up in ("FROM", "JOIN") and k + 2 < len(sig) and words[k + 1] == "("
                  and words[k + 2] in ("SELECT", "WITH", "VALUES")):
                close = _match(toks, sig, k + 1)
                nxt = words[close + 1] if close + 1 < len(sig) else ""
                if nxt in ("", ")", ",", ";") or nxt in _AFTER_SUBQUERY:
                    subqueries += 1
                    inserts[close] = inserts.get(close, "") + f" AS _q{subqueries}"
            k += 1

    out = []
    positions = {i: k for k, i in enumerate(sig)}
    drop_ws = False
    for i, t in enumerate(toks):
        if drop_ws and t.kind == "ws":  # the space after a removed word
            drop_ws = False
            continue
        text = replace.get(i, t.text)
        drop_ws = text == "" and i in replace
        if "%" in text and i not in replace:
            text = text.replace("%", "%%")
        out.append(text)
        k = positions.get(i)
        if k is not None and k in inserts:
            out.append(inserts[k])
    text = "".join(out).rstrip().rstrip(";") + suffix
    return Translation(text + (" RETURNING id" if returning_id else ""), text, returning_id)


def _q(column: str) -> str:
    return f'"{column}"' if column.upper() in _RESERVED_NAMES else column


def _is_keyword(toks, sig, words, k: int, limit_seen: bool) -> bool:
    """Is this reserved word used as the keyword (not as a column name)?"""
    up = words[k]
    prev = toks[sig[k - 1]] if k else None
    if prev is not None and prev.text == ".":
        return False
    nxt = toks[sig[k + 1]] if k + 1 < len(sig) else None
    if up == "OFFSET":
        return limit_seen and nxt is not None and nxt.kind in ("num", "param")
    if up == "FULL":
        return nxt is not None and nxt.kind == "ident" and nxt.up in ("JOIN", "OUTER")
    if up in ("ILIKE", "SIMILAR"):
        return True
    return False


def _order_nulls(toks, sig, words, start: int, inserts: dict) -> None:
    """Give each ORDER BY term SQLite's place for NULLs (first ascending, last descending)."""
    depth = 0
    k = start
    term_last = None
    while k < len(sig):
        w = words[k]
        if w == "(":
            depth += 1
        elif w == ")":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and (w in _ENDS_ORDER or w == ";"):
            break
        elif depth == 0 and w == ",":
            _mark(words, term_last, inserts)
            term_last = None
            k += 1
            continue
        term_last = k
        k += 1
    _mark(words, term_last, inserts)


def _mark(words, last, inserts: dict) -> None:
    if last is None:
        return
    if last >= 1 and words[last - 1] == "NULLS":
        return
    inserts[last] = inserts.get(last, "") + (" NULLS LAST" if words[last] == "DESC" else " NULLS FIRST")


# -- SQLite's side: the few PostgreSQL-only clauses the modules may write ----------------------------

_FOR_UPDATE = re.compile(r"\s+FOR\s+UPDATE(\s+SKIP\s+LOCKED|\s+NOWAIT)?\s*(?=;?\s*$)", re.IGNORECASE)


@lru_cache(maxsize=4096)
def for_sqlite(sql: str) -> str:
    """Row locks mean nothing to SQLite (a write transaction holds the whole database)."""
    if "FOR" not in sql.upper():
        return sql
    return _FOR_UPDATE.sub("", sql)


# -- what the schema needs once ---------------------------------------------------------------------

BOOTSTRAP = [
    # json_extract(doc, '$.a.b') for numbers (what catalog/metrics.py reads from heals.timings)
    """CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS double precision
       LANGUAGE sql IMMUTABLE AS
       $$ SELECT CASE WHEN jsonb_typeof(doc::jsonb #> string_to_array(substr(path, 3), '.')) = 'number'
                 THEN (doc::jsonb #>> string_to_array(substr(path, 3), '.'))::double precision END $$""",
]


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
