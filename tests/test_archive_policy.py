"""Pure logic of the archive tiers: retention and promotion (frozen clock), PAR2 layouts and what
they guarantee and how big they are (predicted exactly, checked against real par2), the redundancy
table, the passphrase sources."""

import os
from datetime import datetime, timedelta, timezone

import pytest

from companion.archive import par2
from companion.archive.errors import NoPassphrase
from companion.archive.passphrase import ENV, get_passphrase
from companion.archive.retention import SetInfo, plan_retention, tier_on_create
from companion.archive.tiers import GiB, MiB, RetentionPolicy, size_class, volume_size_for
from companion.errors import BadInput

UTC = timezone.utc
POLICY = RetentionPolicy()


def at(y, m, d):
    return datetime(y, m, d, 3, 0, tzinfo=UTC)


def weekly(day: datetime, tier="weekly") -> SetInfo:
    return SetInfo(f"{day:%Y%m%d}", tier, day, True, "weekly")


def test_fourth_weekly_of_a_month_is_created_as_monthly():
    earlier = [weekly(at(2026, 11, d)) for d in (1, 8, 15)]
    assert tier_on_create("weekly", at(2026, 11, 22), earlier) == ("monthly", "4th weekly of 2026-11")
    assert tier_on_create("weekly", at(2026, 11, 15), earlier[:2]) == ("weekly", "")
    # weeklies of another month do not count; dailies are never promoted
    assert tier_on_create("weekly", at(2026, 12, 1), earlier) == ("weekly", "")
    assert tier_on_create("daily", at(2026, 11, 22), earlier) == ("daily", "")


def test_prune_promotes_fourth_weekly_and_last_weekly_of_december():
    sets = [weekly(at(2026, 11, d)) for d in (1, 8, 15, 22, 29)]
    sets += [weekly(at(2026, 12, d)) for d in (6, 13, 20, 27)]
    plan = plan_retention(sets, at(2027, 1, 5), POLICY)
    promoted = {p.set_id: (p.new_tier, p.reason) for p in plan.promote}
    assert promoted == {
        "20261122": ("monthly", "4th weekly of 2026-11"),
        # the 4th of December is also its last: yearly wins
        "20261227": ("yearly", "last weekly of December 2026"),
    }
    # while December is not over, its last weekly is not known yet
    plan = plan_retention(sets, at(2026, 12, 28), POLICY)
    assert {p.set_id: p.new_tier for p in plan.promote} == {"20261122": "monthly", "20261227": "monthly"}


def test_retention_expires_each_tier_after_its_keep_period():
    now = at(2027, 6, 1)
    sets = [
        SetInfo("d-old", "daily", now - timedelta(days=31)),
        SetInfo("d-new", "daily", now - timedelta(days=29)),
        SetInfo("w-old", "weekly", now - timedelta(weeks=13), requested="weekly"),
        SetInfo("w-new", "weekly", now - timedelta(weeks=11), requested="weekly"),
        SetInfo("m-old", "monthly", now - timedelta(days=366), requested="monthly"),
        SetInfo("m-new", "monthly", now - timedelta(days=300), requested="monthly"),
        SetInfo("y-old", "yearly", now - timedelta(days=5 * 365 + 1), requested="yearly"),
        SetInfo("y-new", "yearly", now - timedelta(days=4 * 365), requested="yearly"),
        SetInfo("broken", "daily", now - timedelta(days=1), complete=False),
    ]
    plan = plan_retention(sets, now, POLICY)
    assert sorted(s.set_id for s in plan.expire) == ["d-old", "m-old", "w-old", "y-old"]
    assert sorted(s.set_id for s in plan.keep) == ["d-new", "m-new", "w-new", "y-new"]
    assert [s.set_id for s in plan.incomplete] == ["broken"]


def test_a_promoted_weekly_is_kept_for_its_new_tier():
    # 13 weeks old: past a weekly's 12, within a monthly's year, so promotion saves it
    base = at(2026, 3, 1)
    sets = [weekly(base + timedelta(days=7 * i)) for i in range(4)]
    plan = plan_retention(sets, sets[3].created + timedelta(weeks=13), POLICY)
    assert [p.set_id for p in plan.promote] == [sets[3].set_id]
    assert [s.set_id for s in plan.keep] == [sets[3].set_id]
    assert sorted(s.set_id for s in plan.expire) == sorted(s.set_id for s in sets[:3])


def test_redundancy_follows_the_seed_table():
    assert size_class("daily", 10 * MiB).redundancy == 10
    assert size_class("daily", 2 * GiB).redundancy == 8
    assert size_class("weekly", 500 * MiB).redundancy == 15
    assert size_class("weekly", 50 * GiB).redundancy == 12
    assert [size_class("monthly", s).redundancy for s in (50 * MiB, 500 * MiB, 2 * GiB, 10 * GiB, 50 * GiB, 500 * GiB)] \
        == [30, 25, 20, 18, 15, 15]
    assert size_class("yearly", 50 * MiB).redundancy == 30


def test_layout_by_volume_count():
    st = par2.StrategySettings(single_max=20, group_max=60, group_size=20, window=40, slide=20)
    assert par2.choose_layout(5, st).strategy == "single"
    groups = par2.choose_layout(45, st)
    assert groups.strategy == "groups"
    assert [len(g) for g in groups.sets] == [20, 25]  # the 5-volume tail folds into the last group
    windows = par2.choose_layout(100, st)
    assert windows.strategy == "windows"
    assert [(w[0], w[-1]) for w in windows.sets] == [(0, 39), (20, 59), (40, 79), (60, 99)]
    covered = sorted({v for w in windows.sets for v in w})
    assert covered == list(range(100))


def unit_plan(layout, recovery) -> par2.Par2Plan:
    """Volumes of one block each: recovery counts are whole volumes."""
    n = max(v for s in layout.sets for v in s) + 1
    return par2.Par2Plan(layout, 4, (4,) * n, tuple(recovery), 30)


def test_overlapping_windows_repair_a_run_that_disjoint_groups_cannot():
    windows = par2.Par2Layout("windows", (tuple(range(0, 8)), tuple(range(4, 12)), tuple(range(8, 16))), 8, 4)
    groups = par2.Par2Layout("groups", (tuple(range(0, 8)), tuple(range(8, 16))))
    run = {2, 3, 4, 5}  # crosses the window boundary at 4
    assert par2.repairable(unit_plan(windows, [2, 2, 2]), run)
    assert not par2.repairable(unit_plan(groups, [2, 2]), run)
    assert not par2.repairable(unit_plan(windows, [2, 2, 2]), {0, 1, 2})  # only window 0 covers volumes 0-3


def test_guarantees_single_groups_windows():
    # 10 equal volumes, one set at 30 %: any 3 volumes, anywhere
    g = par2.guarantee(par2.plan([1 << 20] * 10, 30), 0)
    assert (g.anywhere_volumes, g.burst_volumes) == (3, 3) and g.anywhere_blocks == 30
    # windows: each window gets the tier's share of its blocks over the windows covering them,
    # so the recovery written stays the tier's share
    st = par2.StrategySettings(single_max=2, group_max=3, window=8, slide=4)
    p = par2.plan([1 << 20] * 16, 30, st)
    assert p.layout.strategy == "windows"
    g = par2.guarantee(p, 0)
    assert 30 <= g.recovery_percent <= 32 and g.anywhere_volumes >= 1


def names_for(n: int) -> list[str]:
    return [f"20260101T000000Z-abcdef.7z.{i + 1:03d}" for i in range(n)]


@pytest.mark.parametrize("sizes, strategy", [
    ([1_000_000], "single"),
    ([300_000] * 9 + [12_345], "single"),
    ([50_000] * 11, "groups"),
    ([40_000] * 13 + [999], "windows"),
])
def test_predicted_par2_bytes_are_what_par2_writes(tmp_path, sizes, strategy):
    """The size model is exact for par2cmdline-turbo's output, so the 1 MB..1 TB test below (sizes
    par2 cannot be run on in a test) says what real sets of those sizes get."""
    st = par2.StrategySettings(single_max=10, group_max=12, group_size=4, window=6, slide=3)
    names = names_for(len(sizes))
    for name, size in zip(names, sizes):
        (tmp_path / name).write_bytes(os.urandom(size))
    p = par2.plan(sizes, 15, st)
    assert p.layout.strategy == strategy
    made = par2.create(tmp_path, "20260101T000000Z-abcdef", names, p)
    assert len(made) == len(p.layout.sets)
    written = sum(f.stat().st_size for f in tmp_path.iterdir() if f.suffix == ".par2")
    assert written == par2.predicted_bytes(p, names)


@pytest.mark.parametrize("tier", ["daily", "weekly", "monthly", "yearly"])
def test_par2_is_the_tiers_share_from_1_mb_to_1_tb(tier):
    """Recovery data within a few points of the seed's table for every size, and a lost volume is
    always repairable: block size and count follow the volumes as written (issue 19)."""
    for size in [10 ** 6, 3 * 10 ** 6, 10 ** 7, 5 * 10 ** 7, 10 ** 8, 5 * 10 ** 8, 10 ** 9, 3 * 10 ** 9, 10 ** 10,
                 5 * 10 ** 10, 10 ** 11, 5 * 10 ** 11, 10 ** 12]:
        r = size_class(tier, size).redundancy
        vs = volume_size_for(size, 512 * MiB, 10, r)
        n = -(-size // vs)
        sizes = [vs] * (n - 1) + [size - vs * (n - 1)]
        p = par2.plan(sizes, r)
        g = par2.guarantee(p, par2.predicted_bytes(p, names_for(n)))
        assert r <= g.recovery_percent, (size, g)
        assert abs(g.overhead_percent - r) <= 3.5, (size, r, g.overhead_percent)
        assert g.anywhere_volumes >= 1, (size, g)
        if size >= 10 ** 7:
            assert abs(g.overhead_percent - r) <= 1.5, (size, r, g.overhead_percent)


def test_small_sets_get_smaller_volumes():
    assert volume_size_for(10 * GiB, 512 * MiB, 10, 8) == 512 * MiB
    vs = volume_size_for(1_000_000, 512 * MiB, 10, 10)
    assert -(-1_000_000 // vs) == 11  # 100 / 10 % + 1
    assert -(-2 * GiB // volume_size_for(2 * GiB, 512 * MiB, 10, 8)) == 14  # 100 / 8 % + 1
    assert volume_size_for(100_000, 512 * MiB, 10, 30) == 64 << 10  # never below 64 KiB
    assert volume_size_for(10 * MiB, 64 << 10, 10, 15) == 64 << 10  # never above the configured size


def test_passphrase_sources(tmp_path, monkeypatch):
    f = tmp_path / "pass"
    f.write_text("from file\n")
    assert get_passphrase(str(f), env={ENV: "from env"}) == "from file"
    assert get_passphrase(None, env={ENV: "from env"}) == "from env"
    monkeypatch.setattr("companion.archive.passphrase._from_keyring", lambda: "from keyring")
    assert get_passphrase(None, env={}) == "from keyring"
    monkeypatch.setattr("companion.archive.passphrase._from_keyring", lambda: None)
    with pytest.raises(NoPassphrase):
        get_passphrase(None, env={})
    (tmp_path / "empty").write_text("")
    with pytest.raises(BadInput, match="empty"):
        get_passphrase(str(tmp_path / "empty"), env={})
    with pytest.raises(BadInput, match="cannot read"):
        get_passphrase(str(tmp_path / "missing"), env={})
