"""seedward beside the real qbit_manage (PyPI qbit-manage) on the same real qbittorrent-nox: its
tag update, noHL tagging and recheck commands run while seedward protects, holds and heals.
qbit_manage must do its own work (tracker tags, noHL) and seedward's tags and stops must stand
afterwards: qbit_manage's recheck resumes every stopped complete torrent, so a torrent seedward
holds stopped (its payload no longer matches) is stopped again, and said."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from companion.config import Policy, Settings
from companion.home import Home
from companion.service import Service

from .helpers import flip_byte, wait_until
from .qbt import qbt_tags, seed_sample

pytestmark = [pytest.mark.qbt, pytest.mark.slow]

CATEGORY = "tv"
HOLD_TAG = "quarantine-only"  # a seedward policy tag: drift stops the torrent and keeps it stopped


def qbit_manage_exe() -> str:
    exe = Path(sys.executable).parent / "qbit-manage"
    if not exe.exists():
        pytest.fail("qbit-manage is not installed: .venv/bin/pip install -e '.[test]'")
    return str(exe)


def qbm_config(qbt, root: Path, downloads: Path) -> Path:
    folder = root / "qbm"
    folder.mkdir()
    (folder / "config.yml").write_text(f"""\
commands:
  dry_run: False
  recheck: True
  cat_update: False
  tag_update: True
  rem_unregistered: False
  tag_tracker_error: False
  rem_orphaned: False
  tag_nohardlinks: True
  share_limits: False
  skip_qb_version_check: True
  skip_cleanup: True
qbt:
  host: "{qbt.url}"
  user: "{qbt.username}"
  pass: "{qbt.password}"
settings:
  nohardlinks_tag: noHL
  tag_stalled_torrents: False
  private_tag: null
directory:
  root_dir: "{downloads}/"
cat:
  {CATEGORY}: "{downloads}"
tracker:
  other:
    tag: other
nohardlinks:
  {CATEGORY}:
""")
    os.chmod(folder / "config.yml", 0o600)
    return folder


def run_qbit_manage(folder: Path) -> str:
    r = subprocess.run([qbit_manage_exe(), "--run", "--config-dir", str(folder), "--web-server=False",
                        "--log-level", "INFO"], capture_output=True, text=True, timeout=300, cwd=folder,
                       env={**os.environ, "QBT_LOG_DIR": str(folder / "logs")})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    return out


def state_of(qbt, tid: str) -> str:
    return qbt.client.torrents_info(torrent_hashes=tid)[0]["state"]


def stopped(qbt, tid: str) -> bool:
    return state_of(qbt, tid) in ("pausedUP", "pausedDL", "stoppedUP", "stoppedDL")


def test_qbit_manage_tags_and_rechecks_beside_seedward(qbt, tmp_path):
    from companion.drift.service import install
    from companion.store.job import register as register_snapshots

    qbt.remove_all()
    downloads = tmp_path / "downloads"
    library = tmp_path / "library"  # outside qbit_manage's root_dir: hard links there count
    library.mkdir()
    if CATEGORY in qbt.client.torrents_categories():  # the session's qBittorrent: another file's test may have made it
        qbt.client.torrents_remove_categories(categories=CATEGORY)
    qbt.client.torrents_create_category(name=CATEGORY, save_path=str(downloads))
    linked, _ = seed_sample(qbt, downloads, "Linked Show", {"e01.mkv": 60_000}, seed=21, category=CATEGORY)
    alone, _ = seed_sample(qbt, downloads, "Alone Show", {"e01.mkv": 50_000}, seed=22, category=CATEGORY)
    held, _ = seed_sample(qbt, downloads, "Held Show", {"e01.mkv": 40_000}, seed=23, category=CATEGORY, tags=HOLD_TAG)
    os.link(downloads / "Linked Show" / "e01.mkv", library / "e01.mkv")  # what Sonarr's import does

    s = Settings()
    s.qbittorrent.url, s.qbittorrent.username, s.qbittorrent.password = qbt.url, qbt.username, qbt.password
    s.qbittorrent.poll_seconds = 0.2
    s.scrub.interval_hours = 0
    s.protection.tags = {HOLD_TAG: Policy(response="quarantine")}
    service = Service(Home(tmp_path / "home"), s)
    register_snapshots(service)
    drift = install(service)
    service.start()
    ids = {linked, alone, held}
    try:
        cat = service.catalog
        wait_until(lambda: all((cat.get_torrent(t) or {"protection": ""})["protection"] == "protected" for t in ids)
                   and ids <= set(drift.monitor.watch.tracked()) and not cat.pending_jobs(), 60, 0.1,
                   "every torrent protected and watched")
        wait_until(lambda: "seedward:hardlinked" in qbt_tags(qbt, linked), 30, 0.1, "the hardlinked tag")
        # drift in the held one: seedward stops it and keeps it stopped (quarantine policy)
        flip_byte(downloads / "Held Show" / "e01.mkv", 10_000)
        wait_until(lambda: stopped(qbt, held) and "seedward:damaged" in qbt_tags(qbt, held), 30, 0.1,
                   "the held torrent stopped and tagged damaged")
        assert cat.get_torrent(held)["protection"] == "damaged"
        before = {t: qbt_tags(qbt, t) for t in ids}

        out = run_qbit_manage(qbm_config(qbt, tmp_path, downloads))

        # qbit_manage did its work on the same qBittorrent
        after = {t: qbt_tags(qbt, t) for t in ids}
        assert all("other" in after[t] for t in ids), after
        assert "noHL" in after[alone] and "noHL" not in after[linked], after
        assert "Resuming" in out and "Held Show" in out  # its recheck resumed the stopped, complete torrent
        # seedward's tags stand, and its stop wins: the held torrent is stopped again
        for t in ids:
            assert {x for x in before[t] if x.startswith("seedward:")} <= after[t], (t, before[t], after[t])
        restops = wait_until(lambda: [e for e in cat.events(held, 50) if e["kind"] == "restopped"], 30, 0.1,
                             "seedward to see the held torrent started again")
        assert "stopped again" in restops[0]["message"]
        wait_until(lambda: stopped(qbt, held), 30, 0.1, "the held torrent stopped again")
        assert cat.get_torrent(held)["protection"] == "damaged" and "seedward:damaged" in qbt_tags(qbt, held)
        # the others still seed, protected, with no drift: qbit_manage only reads the payloads
        for t in (linked, alone):
            assert not stopped(qbt, t) and cat.get_torrent(t)["protection"] == "protected"
            assert not [e for e in cat.events(t, 100) if e["kind"] in ("drift", "restopped")]
        # a second run changes nothing of seedward's either
        run_qbit_manage(tmp_path / "qbm")
        wait_until(lambda: stopped(qbt, held), 30, 0.1, "the held torrent stopped after the second run")
        assert all({x for x in before[t] if x.startswith("seedward:")} <= qbt_tags(qbt, t) for t in ids)
    finally:
        service.stop()
        qbt.remove_all()
        shutil.rmtree(tmp_path / "qbm", ignore_errors=True)
