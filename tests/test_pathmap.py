"""Path mapping, [[instances]] settings, the unreachable check, the spool's container entries and the
container hook script under real shells (issue 17)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion import reach, spool
from companion.config import load_settings
from companion.errors import ConfigError
from companion.instances import merged_state
from companion.pathmap import PathMap

ROOT = Path(__file__).resolve().parent.parent


def test_longest_prefix_whole_components_both_ways():
    m = PathMap([["/data", "/srv/seedbox/data"], ["/data/movies", "/mnt/disk2/movies"]])
    assert m.to_host("/data/tv/a.mkv") == "/srv/seedbox/data/tv/a.mkv"
    assert m.to_host("/data/movies/x/y.mkv") == "/mnt/disk2/movies/x/y.mkv"  # the longer pair wins
    assert m.to_host("/database/x") == "/database/x"  # a component boundary, not a string prefix
    assert m.to_host("/data") == "/srv/seedbox/data"
    assert m.to_host("/data/") == "/srv/seedbox/data"
    assert m.to_host("/other/x") == "/other/x"
    assert m.to_qbt("/mnt/disk2/movies/x/y.mkv") == "/data/movies/x/y.mkv"
    assert m.to_qbt("/srv/seedbox/data/tv") == "/data/tv"
    assert m.to_qbt("/srv/seedbox/database") == "/srv/seedbox/database"
    assert m.to_host("") == "" and m.to_host(None) is None and m.to_host("relative/x") == "relative/x"
    assert m.covers("/srv/seedbox/data/x") and not m.covers("/srv/other")
    assert PathMap().covers("/anything") and PathMap().to_host("/a/b") == "/a/b"
    assert PathMap([["/", "/srv/root"]]).to_host("/x/y") == "/srv/root/x/y"


segment = st.text(alphabet="abcdefgh.-_ ", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
paths = st.lists(segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))


def _nested(prefixes) -> bool:
    return any(a != b and (a == "/" or (b + "/").startswith(a.rstrip("/") + "/")) for a in prefixes for b in prefixes)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a shared, loaded machine
@given(st.lists(st.tuples(paths, paths), min_size=1, max_size=4, unique_by=(lambda p: p[0], lambda p: p[1])),
       st.lists(segment, max_size=4), paths)
def test_a_mapped_path_maps_back_to_itself(pairs, rest, unmapped):
    """Invariant: what qBittorrent reports under a mapped prefix comes back unchanged when seedward
    hands it back (to_qbt(to_host(p)) == p), whenever neither side has one prefix inside another
    (then the longest prefix decides, as tqm and qbit_manage do); a path no pair maps is left as it is."""
    m = PathMap([list(p) for p in pairs])
    if _nested([q for q, _ in m.pairs]) or _nested([h for _, h in m.pairs]):
        return
    for q, h in m.pairs:
        p = os.path.normpath(os.path.join(q, *rest)) if rest else q
        assert m.to_host(p) == (os.path.normpath(os.path.join(h, *rest)) if rest else h)
        assert m.to_qbt(m.to_host(p)) == p
    if not any(unmapped == q or unmapped.startswith(q + "/") for q, _ in m.pairs):
        assert m.to_host(unmapped) == os.path.normpath(unmapped)


def write_config(tmp_path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_instances_take_shared_keys_from_qbittorrent_and_their_own(tmp_path):
    cfg = write_config(tmp_path, """
[qbittorrent]
username = "shared"
poll_seconds = 0.5

[[instances]]
name = "main"
url = "http://127.0.0.1:8080"
password_file = "/run/secrets/main"
path_map = [["/data", "/srv/data"]]
hook_dir = "/srv/seedward-hook"

[[instances]]
name = "disk2"
url = "http://127.0.0.1:8081"
username = "other"
""")
    s = load_settings(cfg, env={})
    a, b = s.qbt_instances()
    assert (a.name, a.url, a.username, a.poll_seconds, a.password_file) == ("main", "http://127.0.0.1:8080", "shared",
                                                                          0.5, "/run/secrets/main")
    assert a.path_map == [["/data", "/srv/data"]] and a.hook_dir == "/srv/seedward-hook"
    assert (b.name, b.username, b.path_map, b.hook_dir) == ("disk2", "other", [], "")
    assert s.qbittorrent is a  # code reading [qbittorrent] gets the first instance


def test_a_lone_qbittorrent_table_is_the_one_instance(tmp_path):
    s = load_settings(write_config(tmp_path, '[qbittorrent]\nurl = "http://q:1"\npath_map = [["/d", "/h"]]\n'), env={})
    (only,) = s.qbt_instances()
    assert only is s.qbittorrent and only.name == "default" and only.path_map == [["/d", "/h"]]


@pytest.mark.parametrize("text, says", [
    ('[qbittorrent]\npath_map = [["data", "/h"]]\n', "should be absolute"),
    ('[qbittorrent]\npath_map = [["/d", "/h", "/x"]]\n', "entry 1 should be"),
    ('[qbittorrent]\npath_map = [["/d", "/h"], ["/d/", "/j"]]\n', "mapped twice"),
    ('[qbittorrent]\npath_map = [["/d/../e", "/h"]]\n', "must not contain '..'"),
    ('[qbittorrent]\npath_map = "/d:/h"\n', "should be a list"),
    ('[qbittorrent]\nhook_dir = "relative"\n', "absolute path on this host"),
    ('[[instances]]\nname = "a"\nurl = "http://q:1"\n[[instances]]\nname = "a"\nurl = "http://q:2"\n', "two entries have the name"),
    ('[[instances]]\nname = "a"\nurl = "http://q:1"\n[[instances]]\nname = "b"\nurl = "http://q:1/"\n', "two entries have the url"),
    ('[[instances]]\nurl = "http://q:1"\n', "needs a name and a url"),
    ('[[instances]]\nname = "a b"\nurl = "http://q:1"\n', "instances.a b.name should be"),
    ('[[instances]]\nname = "a"\nurl = "http://q:1"\nulr = "x"\n', "unknown key 'ulr'"),
    ('[qbittorrent]\nurl = "http://q:9"\n[[instances]]\nname = "a"\nurl = "http://q:1"\n', "[qbittorrent] url is set"),
])
def test_bad_instance_settings_say_what_and_where(tmp_path, text, says):
    cfg = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert says in str(err.value) and str(cfg) in str(err.value)


def test_unreachable_save_paths_and_unmounted_disks(tmp_path):
    assert "does not exist on this host" in reach.unreachable(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    assert "does not exist" in reach.unreachable(tmp_path / "file" / "below")
    assert "not a folder" in reach.unreachable(tmp_path / "file")
    dev = os.stat(tmp_path).st_dev
    assert reach.unreachable(tmp_path, {dev}) is None
    # its files were on another filesystem and none is here: an empty mount point
    assert "another filesystem" in reach.unreachable(tmp_path, {dev + 1}, lambda: False)
    assert reach.unreachable(tmp_path, {dev + 1}, lambda: True) is None  # moved, files there: reachable
    assert "[[instances]] name = 'b': path_map" in reach.hint("b", several=True)
    assert "[qbittorrent] path_map" in reach.hint("default")


def test_merged_state_never_hides_a_running_or_checking_copy():
    assert merged_state(["stoppedUP", "stalledUP"]) == "stalledUP"
    assert merged_state(["pausedUP", "stoppedUP"]) == "stoppedUP"
    assert merged_state(["uploading", "checkingUP"]) == "checkingUP"


HASH = "ab" * 20


def test_spool_args_entries_are_checked_like_json_ones(tmp_path):
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "01-1-sh.args").write_bytes(b"added\0" + HASH.encode() + b"\0-\0name \xff\0/data\0/data/name\0")
    (folder / "02-1-sh.args").write_bytes(b"added\0nothex\0-\0n\0/d\0/d/n\0")
    (folder / "03-1-sh.args").write_bytes(b"added\0" + HASH.encode() + b"\0-\0cut")  # no final NUL
    seen, bad = [], []
    assert spool.drain(folder, seen.append, on_bad=lambda p, why: bad.append(why)) == 1
    assert seen == [{"event": "added", "hash": HASH, "hash_v2": "-", "name": "name \ufffd", "save_path": "/data",
                     "content_path": "/data/name"}]
    assert len(bad) == 2 and any("no valid info hash" in b for b in bad) and any("NUL-terminated" in b for b in bad)
    assert spool.pending(folder) == []


def test_an_instance_name_in_a_hook_event_is_checked():
    ok = {"event": "added", "hash": HASH, "instance": "disk2"}
    assert spool.check_event(ok) == HASH
    with pytest.raises(spool.BadEvent):
        spool.check_event(dict(ok, instance="../x"))


@pytest.mark.parametrize("shell", ["dash", "busybox sh", "bash"])
def test_the_container_hook_spools_under_real_shells(tmp_path, shell):
    """The POSIX sh hook, run as qBittorrent runs it (arguments as given, no shell quoting), writes one
    complete entry the service's spool reader accepts, and still starts the chained program."""
    exe = shutil.which(shell.split()[0])
    if exe is None:
        pytest.skip(f"{shell} not installed (quickstart's apt_pkgs has it)")
    hook_dir = tmp_path / "hook dir"
    hook_dir.mkdir()
    shutil.copy(ROOT / "plugin" / "seedward-hook.sh", hook_dir / "seedward-hook.sh")
    chained = tmp_path / "chained"
    name = 'a "quoted" name\\ with $dollar and `ticks`'
    cmd = shell.split() + [str(hook_dir / "seedward-hook.sh"), "finished", HASH, "-", name, "/data/tv",
                           f"/data/tv/{name}", "--", "touch", str(chained)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    (entry,) = spool.pending(hook_dir / "spool")
    assert entry.name.endswith(".args") and not [p for p in (hook_dir / "spool").iterdir() if p.name.startswith(".")]
    assert spool.read_event(entry) == {"event": "finished", "hash": HASH, "hash_v2": "-", "name": name,
                                       "save_path": "/data/tv", "content_path": f"/data/tv/{name}"}
    from tests.helpers import wait_until

    wait_until(chained.exists, 10, what="the chained program")
    bad = subprocess.run(shell.split() + [str(hook_dir / "seedward-hook.sh"), "nonsense"], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and "usage" in bad.stderr
    os.chmod(hook_dir / "spool", 0o500)
    try:
        if os.geteuid() != 0:
            full = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            assert full.returncode == 2 and "cannot write" in full.stderr
    finally:
        os.chmod(hook_dir / "spool", 0o700)


def test_the_host_hook_says_which_instance_called(tmp_path):
    """With several instances on this host, the hook's line carries --instance NAME: the event says it."""
    from plugin.hook import main

    home = tmp_path / "home"
    assert main(["--instance", "disk2", "--home", str(home), "added", HASH, "-", "n", "/data", "/data/n"]) == 0
    (entry,) = spool.pending(home / "spool")
    assert spool.read_event(entry)["instance"] == "disk2"
    assert main(["--home", str(home), "--instance", "../x", "added", HASH, "-", "n", "/d", "/d/n"]) == 2
    assert len(spool.pending(home / "spool")) == 1  # a bad name: nothing sent or spooled
