"""Shared fixtures. `qbt`: one real qbittorrent-nox on loopback for the whole session."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import lockorder

lockorder.install()  # before seedward's modules are imported: their module-level locks are checked too

# The seedward processes tests start check lock order too (tests/lockorder_site/sitecustomize.py):
# each leaves the pairs it saw in this folder, joined at the end of the session.
_MADE = "SEEDWARD_TEST_LOCKORDER" not in os.environ  # (removed by the session that made it)
if _MADE:
    os.environ["SEEDWARD_TEST_LOCKORDER"] = tempfile.mkdtemp(prefix="sw-lockorder-")
    _ROOT = Path(__file__).resolve().parent.parent
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_ROOT / "tests" / "lockorder_site"), str(_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])

from companion.demo.private_qbt import QbtProcess  # noqa: E402


@pytest.fixture(autouse=True)
def lock_order():
    """After each test: no two locks were ever taken in both orders (tests/lockorder.py)."""
    yield
    cycles = lockorder.RECORDER.cycles()
    if cycles:
        pytest.fail("locks taken in both orders, a deadlock waiting to happen:\n\n"
                    + "\n\n".join(lockorder.RECORDER.explain(c) for c in cycles), pytrace=False)


@pytest.fixture(scope="session")
def qbt(tmp_path_factory):
    """A private qbittorrent-nox 4.5+ on 127.0.0.1: `.url`, `.username`, `.password`, `.client`
    (qbittorrentapi.Client, logged in), `.profile`, `.restart()`, `.add_torrent(torrent, save_path)`
    (waits until complete/seeding), `.wait_complete(id)`, `.remove_all()`, `.log_file`.

    Shared by every test: use your own torrents and remove them when you are done."""
    proc = QbtProcess(tmp_path_factory.mktemp("qbittorrent"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def make_service(qbt, tmp_path):
    """start(**settings overrides) -> a running in-process Service on the test qbittorrent-nox
    (home under tmp_path/"home"); stopped at teardown, and qBittorrent emptied."""
    from companion.home import Home
    from companion.service import Service
    from tests.qbt import service_settings

    started = []
    qbt.remove_all()  # leftovers of earlier tests would be protected too

    def start(home=None, settings=None, **overrides):
        settings = settings or service_settings(qbt, **overrides)
        service = Service(Home(home or tmp_path / "home"), settings).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
    qbt.remove_all()


def pytest_sessionfinish(session, exitstatus):
    """The seedward processes' lock order, joined with this process's (the whole session's, once)."""
    folder = os.environ.get("SEEDWARD_TEST_LOCKORDER")
    if not folder or not os.path.isdir(folder):
        return
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller joins them all
        lockorder.RECORDER.save(folder)
        return
    lockorder.RECORDER.load(folder)
    if _MADE:
        shutil.rmtree(folder, ignore_errors=True)
    cycles = lockorder.RECORDER.cycles()
    if cycles:
        session.config.get_terminal_writer().line(
            "locks taken in both orders in a seedward process the tests started:\n\n"
            + "\n\n".join(lockorder.RECORDER.explain(c) for c in cycles), red=True)
        session.exitstatus = 1
