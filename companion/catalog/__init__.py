"""The catalog: SQLite (WAL, versioned migrations). All of seedward's SQL lives in this package."""

from .db import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
