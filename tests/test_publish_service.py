"""Inside `seedward serve`: `publish --seed-with embedded` hands the companion to the service's embedded
libtorrent seeder, which an independent session downloads from over loopback."""

import json
import sys

import pytest

from companion.control import request
from companion.home import Home
from companion.publish.service import register
from companion.scan import Scanner
from companion.torrent import load_torrent
from tests.helpers import seedward, wait_until
from tests.qbt import seed_sample, service_settings, wait_states
from tests.test_publish import download

pytestmark = pytest.mark.qbt

MAKE = "import os, pathlib; pathlib.Path(os.environ['SEEDWARD_OUTPUT'], 'subs.srt').write_text('1\\n00:00 --> 00:01\\nhi\\n')"


def test_service_seeds_embedded_companion(qbt, make_service, tmp_path):
    settings = service_settings(qbt)
    settings.jobs.embedded_listen = "127.0.0.1:0"
    home = tmp_path / "home"
    service = make_service(home=home, settings=settings)
    register(service)
    original, _torrent = seed_sample(qbt, tmp_path / "seed", "clip", {"clip.mkv": 70_000}, seed=31)
    wait_states(service, [original])
    proc = seedward("job", "run", "--torrent", original, "--model", "subtitler", "--model-version", "3", "--json",
                    "--", sys.executable, "-c", MAKE, home=home)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)

    proc = seedward("publish", job["id"], "--v2", "--seed-with", "embedded", "--json", home=home)
    assert proc.returncode == 0, proc.stderr  # returns: the running service seeds it from now on
    out = json.loads(proc.stdout)
    assert out["seeded_by"] == "embedded" and out["info_hash_v1"] is None
    meta = load_torrent(out["torrent_file"])
    answer = request(Home(home), "seed_companion", id=meta.id)
    assert answer["seeding"] == 1

    download(meta.raw, tmp_path / "fetched", answer["port"])
    assert Scanner().full_scan(meta, tmp_path / "fetched").ok
    assert (tmp_path / "fetched" / meta.name / "output" / "subs.srt").read_text().endswith("hi\n")
    # The companion is not in qBittorrent (embedded), and the original still seeds there.
    assert qbt.client.torrents_info(torrent_hashes=meta.id) == []
    wait_until(lambda: qbt.client.torrents_info(torrent_hashes=original)[0]["progress"] == 1, 10, 0.1, "original")
