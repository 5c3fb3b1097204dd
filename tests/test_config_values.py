"""Values a section cannot work with are refused when the config is read, in every verb, naming the
key: an archive retention of 0 or less made every new set expired (the next `archive prune` deleted
it), a PAR2 group or window of 0 broke the layout, a negative quarantine or retention limit meant
something else than it says."""

import pytest

from companion.config import ConfigError, load_settings
from tests.helpers import seedward

BAD = [
    ("archive", "keep_daily_days", "0"), ("archive", "keep_daily_days", "-1"), ("archive", "keep_weekly_weeks", "0"),
    ("archive", "keep_monthly_days", "-30"), ("archive", "keep_yearly_days", "0"), ("archive", "volume_mb", "0"),
    ("archive", "volume_kb", "-64"), ("archive", "min_volumes", "0"), ("archive", "par2_group_size", "0"),
    ("archive", "par2_window", "0"), ("archive", "par2_slide", "0"), ("archive", "par2_single_max", "0"),
    ("quarantine", "keep_days", "-1"), ("quarantine", "max_mb", "-5"), ("retention", "keep_last", "-2"),
    ("retention", "removed_days", "-1"),
]


@pytest.mark.parametrize("section,key,value", BAD)
def test_a_value_the_feature_cannot_work_with_is_refused(tmp_path, section, key, value):
    config = tmp_path / "config.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=rf"{section}\.{key} should"):
        load_settings(config, env={})


def test_limits_that_do_work_are_taken(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[archive]\nkeep_daily_days = 1\nvolume_kb = 32\npar2_window = 8\npar2_slide = 8\n"
                      "[quarantine]\nkeep_days = 0\nmax_mb = 0\n[retention]\nkeep_last = -1\nremoved_days = 0\n")
    s = load_settings(config, env={})
    assert (s.archive.keep_daily_days, s.archive.volume_kb, s.quarantine.keep_days, s.retention.keep_last) == (1, 32, 0, -1)
    config.write_text("[archive]\npar2_window = 8\npar2_slide = 9\n")
    with pytest.raises(ConfigError, match="par2_slide"):
        load_settings(config, env={})


def test_archive_prune_with_a_retention_of_zero_is_refused_before_anything_is_read(tmp_path):
    """The real command: one line naming the file and the key, exit 2, the remote untouched."""
    home, remote = tmp_path / "home", tmp_path / "remote"
    (remote / "daily" / "20260101T000000Z-abcdef").mkdir(parents=True)
    home.mkdir()
    (home / "config.toml").write_text(f'[archive]\nremote = "{remote}"\nkeep_daily_days = 0\n')
    proc = seedward("archive", "prune", home=home)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"seedward: {home / 'config.toml'}: bad configuration: archive.keep_daily_days "
                                   "should be at least 1, not 0")
    assert (remote / "daily" / "20260101T000000Z-abcdef").is_dir()
