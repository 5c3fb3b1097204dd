"""Pure parts of the service: state naming across qBittorrent versions, backoff, hook ids."""

from companion.qbt import is_complete, normalize_state
from companion.loops import Backoff
from companion.service.protect_job import state_tag
from companion.spool import torrent_id_of


def test_paused_and_stopped_states_mean_the_same():
    assert normalize_state("pausedUP") == "stoppedUP" == normalize_state("stoppedUP")
    assert normalize_state("pausedDL") == "stoppedDL"
    assert normalize_state("stalledUP") == "stalledUP"
    for state in ("pausedUP", "stoppedUP", "stalledUP", "uploading", "queuedUP", "forcedUP"):
        assert is_complete({"progress": 1, "state": state})
    for state in ("checkingUP", "moving", "missingFiles", "error", "pausedDL", "downloading"):
        assert not is_complete({"progress": 1, "state": state})
    assert not is_complete({"progress": 0.5, "state": "stalledUP"})


def test_backoff_doubles_up_to_its_bound_and_resets():
    b = Backoff(1.0, 8.0, jitter=0.0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next() == 1.0
    jittered = Backoff(10.0, 60.0, jitter=0.1, rnd=lambda: 1.0)
    assert jittered.next() == 11.0 and jittered.next() == 22.0


def test_hook_hashes_give_qbittorrents_torrent_id():
    v1, v2 = "ab" * 20, "cd" * 32
    assert torrent_id_of(v1, v2) == v2[:40]  # hybrid and v2: the truncated v2 hash
    assert torrent_id_of(v1, "-") == v1
    assert torrent_id_of("-", v2.upper()) == v2[:40]
    assert torrent_id_of("-", "") is None and torrent_id_of("zz" * 20, "") is None


def test_tags_mirror_states():
    assert state_tag("protected") == "seedward:protected"
    assert state_tag("baseline_bad") == "seedward:baseline-bad"
