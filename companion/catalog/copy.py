"""Copying a whole catalog between engines: a PostgreSQL catalog's SQLite copy (archive sets keep
one), and an embedded catalog moved into a shared PostgreSQL one (`seedward fleet import-catalog`).
Both sides are migrated first, so they have the same tables; rows go table by table in one
transaction on each side (the source read in one snapshot)."""

from pathlib import Path

BATCH = 2000


def tables(cat) -> list[str]:
    if cat.engine == "sqlite":
        rows = cat.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                         " ORDER BY name")
    else:
        rows = cat.query("SELECT table_name AS name FROM information_schema.tables WHERE table_schema ="
                         " current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")
    return [r["name"] for r in rows if r["name"] != "schema_migrations"]


def referenced(cat) -> set[str]:
    """Tables other tables' foreign keys point at: copied first."""
    if cat.engine == "sqlite":
        return {r["table"] for t in tables(cat) for r in cat.query(f"PRAGMA foreign_key_list({t})")}
    return {r["name"] for r in cat.query(
        "SELECT DISTINCT ccu.table_name AS name FROM information_schema.referential_constraints rc"
        " JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = rc.unique_constraint_name"
        " AND ccu.constraint_schema = rc.unique_constraint_schema WHERE rc.constraint_schema = current_schema()")}


def columns(cat, table: str) -> list[str]:
    if cat.engine == "sqlite":
        return [r["name"] for r in cat.query(f"PRAGMA table_info({table})")]
    return cat.schema.columns.get(table, [])


def copy_rows(src, dst, *, owner: str | None = None, replace: bool = False) -> dict[str, int]:
    """Every row of every table `src` and `dst` share into `dst`. owner: set torrents' and queue
    rows' owner to this (an embedded catalog joining a fleet). replace: empty dst's tables first.
    Returns rows copied per table."""
    done: dict[str, int] = {}
    parents = referenced(dst)
    shared = sorted((t for t in tables(src) if t in set(tables(dst))), key=lambda t: (t not in parents, t))
    with src.tx(serial=False) as sdb, dst.tx() as db:
        if src.engine == "postgresql":  # the source read at one point in time
            sdb.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if replace:
            for table in reversed(shared):
                db.execute(f"DELETE FROM {table}")
        for table in shared:
            cols = [c for c in columns(src, table) if c in set(columns(dst, table))]
            if not cols:
                continue
            names = ", ".join(f'"{c}"' for c in cols)
            marks = ", ".join("?" * len(cols))
            rows = src.query(f"SELECT {names} FROM {table}")
            if owner is not None and "owner" in cols:
                at = cols.index("owner")
                rows = [tuple(owner if i == at else v for i, v in enumerate(r)) for r in rows]
            for i in range(0, len(rows), BATCH):
                db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", [tuple(r) for r in rows[i:i + BATCH]])
            done[table] = len(rows)
        if dst.engine == "postgresql":
            _advance_sequences(dst, db, shared)
    return done


def _advance_sequences(cat, db, shared) -> None:
    """Serial ids copied explicitly: move each sequence past them."""
    for table in shared:
        if table in cat.schema.serial:
            db.raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                           f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")


def copy_catalog(src, dest: Path) -> None:
    """src (any engine) copied into a new SQLite catalog file at dest."""
    from .db import Catalog

    dest = Path(dest)
    if dest.exists():
        dest.unlink()
    target = Catalog(dest, owners=src.owners)
    try:
        copy_rows(src, target)
    finally:
        target.close()
