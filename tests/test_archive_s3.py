"""Immutable archive sets (issue 19 item 5) against a real S3 implementation: Ceph's radosgw on a
one-node cluster (tests/rgw.py), through rclone's S3 backend. A set under S3 Object Lock cannot have
its objects' versions deleted or overwritten before the lock ends (the S3 server refuses: that is
the proof, not our bookkeeping), `archive prune` never tries, and deletes it once the lock is over.
`rclone serve s3` ignores Object Lock: seedward notices and never marks such a set complete."""

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from companion.archive.create import create_set
from companion.archive.errors import RemoteError
from companion.archive.prune import prune
from companion.archive.remote import Remote, rclone_binary
from companion.archive.restore import restore_set
from companion.archive.tiers import RetentionPolicy
from companion.cli.context import Context
from tests.helpers import wait_until
from tests.rgw import ACCESS, SECRET, Rgw, missing
from tests.test_archive import PASS, env, same_tree  # noqa: F401 (env: fixture)

pytestmark = pytest.mark.slow
UTC = timezone.utc


@pytest.fixture(scope="module")
def rgw(tmp_path_factory):
    if missing():
        pytest.skip(f"Ceph's radosgw is not installed ({', '.join(missing())}; see ./quickstart)")
    s3 = Rgw(tmp_path_factory.mktemp("rgw")).start()
    yield s3
    s3.stop()


def rclone(conf, *args, check=True):
    return subprocess.run([rclone_binary(), "--config", str(conf), *args], capture_output=True, text=True,
                          check=check, timeout=120)


def test_locked_sets_cannot_be_deleted_and_prune_waits_for_the_lock(rgw, env):
    conf = rgw.rclone_conf(env["tmp"] / "rclone.conf")
    rclone(conf, "mkdir", "--s3-bucket-object-lock-enabled", "rgw:vault")
    ctx = Context(env["home"])
    ctx.settings.archive.remote = "rgw:vault/seedward"
    ctx.settings.archive.rclone_config = str(conf)
    ctx.settings.archive.immutable_days.weekly = 1
    remote = Remote("rgw:vault/seedward", str(conf))
    # made "a day ago, less 40 seconds": its one-day lock ends 40 s from now
    created = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=40)
    made = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                      store=ctx.store, tier="weekly", remote=remote, passphrase=PASS, now=created)
    assert made.uploaded, made.error
    until = datetime.fromisoformat(made.locked_until)
    assert abs((until - created - timedelta(days=1)).total_seconds()) < 1
    folder = f"rgw:vault/seedward/weekly/{made.set_id}"
    items = json.loads(rclone(conf, "lsjson", "--metadata", "--files-only", folder).stdout)
    assert len(items) == made.volumes + 3  # volumes, PAR2 index + recovery file, set.json
    for item in items:  # read back from the S3 server itself
        assert item["Metadata"]["object-lock-mode"] == "COMPLIANCE"
        assert item["Metadata"]["object-lock-retain-until-date"].startswith(until.strftime("%Y-%m-%dT%H:%M:%S"))

    # the server refuses to delete a locked version; a plain delete only hides it behind a delete marker
    uploaded = datetime.now(UTC)
    wait_until(lambda: datetime.now(UTC) > uploaded + timedelta(seconds=1), 5, 0.1, "a second to pass")
    volume = f"{folder}/{made.set_id}.7z.001"
    rclone(conf, "deletefile", volume)
    versions = rclone(conf, "lsf", "--s3-versions", folder).stdout.split()
    # rclone names an old version NAME-vTIME.EXT: here SET.7z-v2026-...-123.001
    [old] = [v for v in versions if re.fullmatch(rf"{re.escape(made.set_id)}\.7z-v[\d-]+\.001", v)]
    refused = rclone(conf, "deletefile", "--s3-versions", f"{folder}/{old}", "--retries", "1", check=False)
    assert refused.returncode != 0 and "forbidden by object lock" in refused.stderr.lower()
    rclone(conf, "copyto", "--s3-version-at", uploaded.strftime("%Y-%m-%dT%H:%M:%SZ"), volume, env["tmp"] / "v1")
    assert (env["tmp"] / "v1").stat().st_size > 0

    # retention (12 weeks) long past, lock not over: prune keeps the set and says why
    policy = RetentionPolicy(weekly_weeks=0)
    report = prune(remote, ctx.catalog, policy, env["tmp"] / "scratch", settings=ctx.settings.archive)
    assert report["expired"] == [] and [s["set_id"] for s in report["locked"]] == [made.set_id]
    assert rclone(conf, "lsf", folder).stdout.strip()

    # the lock is over: prune deletes the set, old versions included
    wait_until(lambda: datetime.now(UTC) > until + timedelta(seconds=2), 90, 1, "the lock to end")
    report = prune(remote, ctx.catalog, policy, env["tmp"] / "scratch", settings=ctx.settings.archive)
    assert [s["set_id"] for s in report["expired"]] == [made.set_id] and report["locked"] == []
    left = rclone(conf, "lsf", "--s3-versions", "-R", "rgw:vault/seedward", check=False).stdout.split()
    assert all(name.startswith(".seedward-lock-probe") for name in left)  # only the (locked) probes stay
    ctx.close()


def test_a_locked_set_restores_from_s3(rgw, env):
    conf = rgw.rclone_conf(env["tmp"] / "rclone.conf")
    rclone(conf, "mkdir", "--s3-bucket-object-lock-enabled", "rgw:restorable")
    ctx = Context(env["home"])
    ctx.settings.archive.immutable_days.monthly = 2
    remote = Remote("rgw:restorable/seedward", str(conf))
    made = create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                      store=ctx.store, tier="monthly", remote=remote, passphrase=PASS)
    assert made.uploaded and made.locked_until, made.error
    res = restore_set(remote=remote, set_ref=made.set_id, to=env["tmp"] / "back", passphrase=PASS,
                      work=env["tmp"] / "work", catalog=ctx.catalog)
    assert res.checked_against_catalog == 3
    same_tree(env["payload"], env["tmp"] / "back" / "payload" / env["tid"] / "show")
    ctx.close()


def test_a_server_that_ignores_object_lock_is_caught(env):
    """`rclone serve s3` stores the lock headers and enforces none (reading them back would say
    "locked"): the probe's delete goes through, so create refuses before building anything."""
    served = env["tmp"] / "served"
    (served / "bucket").mkdir(parents=True)
    proc = subprocess.Popen([rclone_binary(), "serve", "s3", str(served), "--addr", "127.0.0.1:0", "--config",
                             "/dev/null", "--auth-key", f"{ACCESS},{SECRET}"], stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        def port():
            line = proc.stderr.readline()
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            return m.group(1) if m else None

        found = wait_until(port, 30, 0, "rclone serve s3")
        conf = env["tmp"] / "rclone.conf"
        conf.write_text(f"[fake]\ntype = s3\nprovider = Rclone\naccess_key_id = {ACCESS}\n"
                        f"secret_access_key = {SECRET}\nendpoint = http://127.0.0.1:{found}\nforce_path_style = true\n")
        ctx = Context(env["home"])
        ctx.settings.archive.immutable_days.weekly = 7
        remote = Remote("fake:bucket/seedward", str(conf))
        with pytest.raises(RemoteError, match="Object Lock") as caught:
            create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                       store=ctx.store, tier="weekly", remote=remote, passphrase=PASS)
        assert caught.value.exit_code == 13
        assert not list(served.rglob("*.7z.*")) and not list((env["home"] / "archive" / "outbox").glob("*"))
        ctx.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_lock_needs_an_s3_remote(env):
    ctx = Context(env["home"])
    ctx.settings.archive.immutable_days.daily = 3
    with pytest.raises(Exception, match="immutable_days needs an S3 remote"):
        create_set(home=ctx.home, settings=ctx.settings, catalog=ctx.catalog, manifests=ctx.manifests,
                   store=ctx.store, tier="daily", remote=Remote(str(env["remote"])), passphrase=PASS)
    ctx.close()

