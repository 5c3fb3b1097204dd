"""The catalog-level test suites, run again with every catalog on a real PostgreSQL (issue 20).

tests/pg_catalog_plugin.py puts each catalog a test opens by path into its own PostgreSQL
database, so these tests pass unchanged on both engines: the translation in catalog/pg.py and the
engine layer in catalog/db.py are what they prove. Left out (each for its reason): tests that read
the SQLite file itself, or run the `seedward` command, whose separate process opens the home's own
SQLite catalog (those run on SQLite in their own files)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pgserver import pg_server  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent

SUITES = [
    "tests/test_catalog.py",
    "tests/test_catalog_views.py",
    "tests/test_store.py",
    "tests/test_store_trusted.py",
    "tests/test_store_crash.py",
    "tests/test_store_policy.py",
    "tests/test_drift.py",
    "tests/test_lease.py",
    "tests/test_ladder_units.py",
    "tests/test_job_units.py",
    "tests/test_notify.py",
]

LEFT_OUT = {
    "tests/test_catalog.py::test_wal_and_versioned_migrations": "reads SQLite's journal mode",
    "tests/test_catalog.py::test_ambiguous_and_unknown_prefixes": "`seedward catalog add` in its own process",
    "tests/test_catalog.py::test_add_then_show_by_prefix": "`seedward catalog add` in its own process",
    "tests/test_catalog.py::test_damage_is_recorded_but_never_becomes_the_baseline": "reads the SQLite file",
    "tests/test_catalog.py::test_payload_change_commits_what_and_why": "`seedward catalog add` in its own process",
    "tests/test_catalog.py::test_add_with_bad_save_path_leaves_nothing": "reads the SQLite file",
    "tests/test_catalog_views.py::test_offline_answers_read_without_writing": "checks the SQLite files' mtimes",
    "tests/test_notify.py::test_rate_limits_hold_repeats_and_send_one_summary":
        "moves a fake clock while its events are still being stored",
    "tests/test_notify.py::test_qbittorrent_down_then_back_is_notified_and_secrets_stay_out_of_logs":
        "paced by a real qBittorrent's restart (runs on SQLite in its own file)",
}


@pytest.mark.slow
def test_catalog_suites_pass_on_postgresql(pg_server):
    env = dict(os.environ, SEEDWARD_TEST_PG_URL=pg_server.url)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "tests.pg_catalog_plugin", "-p", "no:cacheprovider",
            "-m", "not slow", *SUITES]
    for node in LEFT_OUT:
        args += ["--deselect", node]
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = "\n".join(r.stdout.strip().splitlines()[-30:])
    assert r.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail
