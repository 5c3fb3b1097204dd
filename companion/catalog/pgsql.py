"""SQLite's SQL translated into PostgreSQL's (the rules are listed in catalog/pg.py's docstring).

A small tokenizer (strings, quoted names, comments and parameters kept apart) and one pass over a
statement's significant tokens; results are cached per statement and schema version.
"""

from __future__ import annotations  # Schema lives in pg.py

import re
import threading
from functools import lru_cache

HIDDEN = "rowid"  # the column standing in for SQLite's implicit rowid (also in pg.py)

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


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
