"""forget's retention policy (pure, compared with the real restic) and forget + prune on a store
driven by a frozen clock."""

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from companion.catalog import Catalog
from companion.errors import BadInput
from companion.store import Store
from companion.store.policy import KeepPolicy, apply_policy
from companion.torrent import load_torrent
from tests.helpers import make_torrent, write_payload

TIMES = ["2025-12-31 23:00:00", "2026-01-01 10:00:00", "2026-01-01 12:00:00", "2026-01-02 09:00:00",
         "2026-01-03 08:00:00", "2026-01-03 20:00:00", "2026-01-10 07:00:00", "2026-02-15 18:00:00"]
POLICIES = [
    KeepPolicy(daily=3),
    KeepPolicy(last=2, monthly=2),
    KeepPolicy(monthly=5),
    KeepPolicy(weekly=2),
    KeepPolicy(daily=-1),
    KeepPolicy(hourly=4, weekly=1),
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def kept(policy: KeepPolicy) -> set[str]:
    decision = apply_policy([(t, utc(t)) for t in TIMES], policy)
    assert {sid for sid, _ in decision.keep} | set(decision.remove) == set(TIMES)
    return {sid for sid, _ in decision.keep}


def test_policy_examples():
    assert kept(KeepPolicy(daily=3)) == {"2026-02-15 18:00:00", "2026-01-10 07:00:00", "2026-01-03 20:00:00"}
    # 2025-12-31 lies in ISO week 2026-W01, with 2026-01-01..03
    assert kept(KeepPolicy(weekly=3)) == {"2026-02-15 18:00:00", "2026-01-10 07:00:00", "2026-01-03 20:00:00"}
    assert kept(KeepPolicy(monthly=5)) == {"2026-02-15 18:00:00", "2026-01-10 07:00:00", "2025-12-31 23:00:00"}
    assert kept(KeepPolicy(daily=-1)) == set(TIMES) - {"2026-01-01 10:00:00", "2026-01-03 08:00:00"}
    decision = apply_policy([(t, utc(t)) for t in TIMES], KeepPolicy(last=1, yearly=5))
    assert decision.keep == [("2026-02-15 18:00:00", ["last", "yearly"]), ("2025-12-31 23:00:00", ["yearly"])]
    nothing = apply_policy([(t, utc(t)) for t in TIMES], KeepPolicy())
    assert nothing.remove == [] and len(nothing.keep) == len(TIMES)


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic (Debian package) is not installed")
def test_policy_agrees_with_restic(tmp_path):
    env = dict(os.environ, RESTIC_PASSWORD="test", RESTIC_REPOSITORY=str(tmp_path / "repo"), TZ="UTC",
               RESTIC_CACHE_DIR=str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")

    subprocess.run(["restic", "-q", "init"], env=env, check=True, capture_output=True)
    backups = [subprocess.Popen(["restic", "-q", "backup", "--time", t, str(src)], env=env) for t in TIMES]
    assert all(p.wait(timeout=120) == 0 for p in backups)
    runs = []
    for policy in POLICIES:
        flags = []
        for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            if getattr(policy, rule):
                flags += [f"--keep-{rule}", str(getattr(policy, rule))]
        if policy.daily == -1:  # restic 0.14 has no "unlimited": a count larger than the history
            flags[flags.index("-1")] = "100"
        runs.append((policy, subprocess.Popen(["restic", "-q", "--no-lock", "forget", "--dry-run", "--json", *flags],
                                              env=env, stdout=subprocess.PIPE, text=True)))
    for policy, proc in runs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        theirs = {datetime.fromisoformat(s["time"].replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
                  for g in json.loads(out) for s in g["keep"]}
        assert kept(policy) == theirs, policy


class FrozenClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_forget_and_prune_with_a_frozen_clock(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    clock = FrozenClock(utc("2026-03-01 08:00:00"))
    store = Store.open(tmp_path / "store", cat, pack_size=64 * 1024, clock=clock)
    data = tmp_path / "data"
    ids, metas = [], []
    for day in range(4):  # a new release each day: new bytes each time
        write_payload(data / f"r{day}", {"a.bin": 100_000, "b.bin": 20_000}, seed=day)
        meta = load_torrent(make_torrent(data / f"r{day}", 16384, "v2", out=tmp_path / f"r{day}.torrent"))
        metas.append(meta)
        # the same torrent twice a day; the morning one is superseded by the evening one
        for hour in (8, 20):
            clock.now = utc(f"2026-03-0{day + 1} {hour:02}:00:00")
            ids.append(store.snapshot(meta, data, "auto").id)
    with pytest.raises(BadInput):
        store.forget()
    dry = store.forget(keep_daily=2, dry_run=True)
    assert len(store.snapshots()) == 8 and dry.removed == [ids[0], ids[2], ids[4], ids[6]]
    result = store.forget(keep_last=1)
    assert sorted(result.removed) == sorted(ids[0:8:2])
    assert [s.id for s in store.snapshots()] == ids[1::2]
    # snapshots of one torrent share every chunk: data goes only with a torrent's last snapshot
    assert store.prune().bytes_freed == 0
    store.forget(snapshot_ids=[s.id[:16] for m in metas[:3] for s in store.snapshots(m.id)])
    before = sum(p.stat().st_size for p in (tmp_path / "store" / "data").rglob("*") if p.is_file())
    pruned = store.prune()
    after = sum(p.stat().st_size for p in (tmp_path / "store" / "data").rglob("*") if p.is_file())
    assert pruned.bytes_freed == 3 * 120_000 and pruned.trees_deleted == 0
    assert after < before - 3 * 100_000
    assert store.check().ok
    last = store.snapshots()[-1]
    store.restore(last.id, tmp_path / "out")
    for entry in metas[3].real_files:
        assert (tmp_path / "out" / entry.path).read_bytes() == (data / entry.path).read_bytes()
    assert store.prune().bytes_freed == 0
    cat.close()
