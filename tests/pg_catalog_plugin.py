"""pytest plugin: every catalog a test opens by path lives on PostgreSQL instead (one database per
path, made on first use), so catalog-level tests run unchanged on both engines
(tests/test_catalog_engines.py). SEEDWARD_TEST_PG_URL names the server (any database on it)."""

import hashlib
import os
from pathlib import Path

import psycopg
import pytest

from companion.catalog import db, views

BASE = os.environ["SEEDWARD_TEST_PG_URL"]
_made: set[str] = set()


def _url(name: str) -> str:
    return BASE.rsplit("/", 1)[0] + "/" + name


def _name(path) -> str:
    return "t_" + hashlib.sha256(str(Path(path).absolute()).encode()).hexdigest()[:24]


def _admin(sql: str) -> None:
    with psycopg.connect(BASE, autocommit=True) as conn:
        conn.execute(sql)


_catalog_init = db.Catalog.__init__
_readonly_init = views.ReadOnly.__init__


def _catalog(self, target, **kwargs):
    if not db.is_url(target):
        name = _name(target)
        if name not in _made:
            _admin(f"CREATE DATABASE {name}")
            _made.add(name)
        target = _url(name)
    _catalog_init(self, target, **kwargs)


def _readonly(self, path):
    if not db.is_url(path):
        name = _name(path)
        if name not in _made:
            raise db.CatalogError(path, "no catalog yet")
        path = _url(name)
    _readonly_init(self, path)


db.Catalog.__init__ = _catalog
views.ReadOnly.__init__ = _readonly


@pytest.fixture(scope="session", autouse=True)
def _drop_databases():
    yield
    for name in sorted(_made):
        try:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.Error:
            pass
