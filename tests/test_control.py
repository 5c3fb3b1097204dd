"""The control socket as a protocol with limits, against the real service (its real socket and catalog;
qBittorrent is not needed for any of it, so it is left unreachable): a backlog that fits bursts of
clients, a request ceiling that closes the connection before anything runs, every op's fields
checked, a nesting limit, replies of any size, and random frames that never break it."""

import json
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion.catalog import Catalog
from companion.control import MAX_DEPTH, MAX_REQUEST, ControlError, LineReader, ServiceBusy, request
from companion.home import Home
from tests.qbt import service_settings


class Gone:  # a qBittorrent nobody listens for: the sync loop backs off, the socket is all we test
    username, password = "nobody", "x"

    def __init__(self):
        from companion.demo.private_qbt import free_port

        self.url = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def service():
    """The real Service with its features (drift's `restore`, drills, publish), on a short socket path."""
    from companion.service import Service
    from companion.service.features import install_features

    root = Path(tempfile.mkdtemp(prefix="sw-ctl-", dir="/tmp"))
    svc = Service(Home(root / "home"), service_settings(Gone()))
    install_features(svc)
    svc.start()
    yield svc
    svc.stop()
    shutil.rmtree(root, ignore_errors=True)


def raw(service, data: bytes, replies: int | None = None, timeout: float = 30.0) -> list[dict]:
    """Send bytes as they are; read reply lines until the service closes (or `replies` arrived)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(service.home.socket))
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if replies is None:
            sock.shutdown(socket.SHUT_WR)
        reader, out = LineReader(sock), []
        while replies is None or len(out) < replies:
            try:
                line = reader.line()
            except ConnectionResetError:
                break
            if not line:
                break
            out.append(json.loads(line))
        return out


def test_fifty_concurrent_clients_all_get_answers(service):
    """socketserver's default backlog of 5 refused most of a burst with a raw BlockingIOError."""
    results, errors = [], []

    def call():
        try:
            results.append(request(service.home, "ping", timeout=30)["pid"])
        except (ControlError, OSError) as exc:  # ServiceBusy included: must not happen at 50
            errors.append(repr(exc))

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 50


def test_a_request_over_the_ceiling_closes_the_connection_and_nothing_of_it_runs(service):
    """The tail past the ceiling used to run as a request of its own (a smuggled ping)."""
    before = service.catalog.one("SELECT MAX(id) AS n FROM events")["n"]
    line = b'{"op": "hook", "event": "added", "hash": "' + b"a" * 40 + b'", "name": "' + b"x" * MAX_REQUEST + b'"}\n'
    replies = raw(service, line + b'{"op": "ping"}\n')
    assert len(replies) == 1 and replies[0]["ok"] is False and "longer than" in replies[0]["error"]
    assert service.catalog.one("SELECT MAX(id) AS n FROM events")["n"] == before  # no hook event recorded
    assert service.catalog.pending_jobs() == []
    assert request(service.home, "ping")["pid"]  # and the service is fine


def test_a_request_of_exactly_the_ceiling_is_served(service):
    pad = MAX_REQUEST - len(b'{"op": "events", "torrent_id": ""}')
    line = b'{"op": "events", "torrent_id": "' + b"a" * pad + b'"}'
    assert len(line) == MAX_REQUEST
    [reply] = raw(service, line + b"\n")
    assert reply["ok"] is False and "events: torrent_id" in reply["error"]  # refused by its schema, not its size


@pytest.mark.parametrize("fields, says", [
    ({"op": "hook", "event": "added", "hash": 7}, "hook: hash: 7 is not a string"),
    ({"op": "hook", "event": "deleted", "hash": "aa" * 20}, "hook: event: 'deleted' is not one of added, finished"),
    ({"op": "hook", "event": "added", "hash": "", "hash_v2": ""}, "hook: no valid info hash"),
    ({"op": "events", "since": "x"}, "events: since: 'x' is not an integer"),
    ({"op": "events", "since": 10 ** 30}, "is not at most"),
    ({"op": "events", "since": -1}, "is not at least 0"),
    ({"op": "events", "bogus": 1}, "events: unknown field 'bogus'"),
    ({"op": "action", "action": "verify"}, "'id' is a required property"),
    ({"op": "action", "action": "explode", "id": "ab"}, "action: action: 'explode' is not one of"),
    ({"op": "detail", "id": "../etc"}, "detail: id: '../etc' is not hex digits"),
    ({"op": "restore", "id": "ab", "files": 3}, "restore: files: 3 is not"),
    ({"op": "ping", "extra": [1]}, "ping: unknown field 'extra'"),
    ({"op": "no-such-op"}, "unknown op 'no-such-op'"),
])
def test_every_op_checks_its_fields_with_a_clear_error(service, fields, says):
    [reply] = raw(service, json.dumps(fields).encode() + b"\n")
    assert reply["ok"] is False and says in reply["error"] and "internal" not in reply, reply


def test_infinity_and_deep_nesting_are_refused_and_the_connection_goes_on(service):
    too_deep = b'{"op": "ping", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n"
    just_too_deep = json.dumps({"op": "ping", "x": _nest(MAX_DEPTH)}).encode() + b"\n"
    replies = raw(service, b'{"op": "events", "since": 1e999}\n{"op": "events", "since": Infinity}\n'
                  + too_deep + just_too_deep + b'{"op": "ping"}\n', replies=5)
    assert [r["ok"] for r in replies] == [False, False, False, False, True]
    assert "events: since: inf is not an integer" in replies[0]["error"]
    assert "Infinity is not allowed" in replies[1]["error"]
    assert f"nested deeper than {MAX_DEPTH} levels" in replies[2]["error"]
    assert f"nested deeper than {MAX_DEPTH} levels" in replies[3]["error"]


def _nest(levels: int):
    """A list nested so that {"op": ..., "x": it} is levels + 1 deep."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_reply_of_any_size_arrives_whole(service):
    """The status of 5,000 torrents is several MB on one line (the old client stopped at 1 MiB)."""
    cat = Catalog(service.home.catalog_db)
    try:
        with cat.tx() as db:
            db.executemany(
                "INSERT INTO torrents (id, info_hash_v1, name, kind, piece_length, num_pieces, total_size,"
                " payload_size, save_path, protection, added_at, updated_at)"
                " VALUES (?, ?, ?, 'v1', 262144, 40, 10485760, 10485760, ?, 'protected', '2026-01-01', '2026-01-01')",
                [(f"{i:040x}", f"{i:040x}", f"Big Library {i:05d} " + "n" * 300, f"/srv/seed/{i:05d}")
                 for i in range(1, 5001)])
        status = request(service.home, "status", timeout=120)
        assert len(json.dumps(status)) > 2 * MAX_REQUEST
        ids = {t["id"] for t in status["torrents"]}
        assert {f"{i:040x}" for i in range(1, 5001)} <= ids
    finally:
        with cat.tx() as db:
            db.execute("DELETE FROM torrents WHERE name LIKE 'Big Library %'")
        cat.close()


@pytest.fixture
def own_service():
    """A service of its own, stopped within a bound: a service that hangs must fail its test, not
    hang the module's teardown."""
    from companion.service import Service
    from companion.service.features import install_features

    root = Path(tempfile.mkdtemp(prefix="sw-ctl-", dir="/tmp"))
    svc = Service(Home(root / "home"), service_settings(Gone()))
    install_features(svc)
    svc.start()
    yield svc
    stopper = threading.Thread(target=svc.stop, daemon=True)
    stopper.start()
    stopper.join(120)
    shutil.rmtree(root, ignore_errors=True)
    assert not stopper.is_alive(), "the service did not stop: its threads are stuck"


def test_status_and_detail_at_once_always_answer(own_service):
    """Found by the TUI's end-to-end test: `status` held the catalog reader while it waited for the
    continuity ledger, `detail` held the ledger while it waited for the reader. Both hung for good,
    and the TUI went on showing the last state it had. Many of both at once, with the catalog
    changing under them (each status reads the continuity again), must all answer."""
    tid = f"{0x10C0DE:040x}"
    cat = Catalog(own_service.home.catalog_db)
    with cat.tx() as db:
        db.execute("INSERT INTO torrents (id, info_hash_v1, name, kind, piece_length, num_pieces, total_size,"
                   " payload_size, save_path, protection, added_at, updated_at)"
                   " VALUES (?, ?, 'Lock Order', 'v1', 16384, 1, 1, 1, '/srv/seed', 'protected', '2026-01-01', '2026-01-01')",
                   (tid, tid))
    stop, errors, answered = threading.Event(), [], []

    def writer():  # new events: the catalog's data_version moves, so every status rebuilds continuity
        while not stop.is_set():
            cat.add_event(tid, "state", "protection: protected", state="protected")

    def client(op: str):
        for _ in range(40):
            try:
                answer = request(own_service.home, op, timeout=60, **({"id": tid} if op == "detail" else {}))
                answered.append(op if "continuity" in answer else f"{op} without continuity")
            except (ControlError, OSError) as exc:
                errors.append(f"{op}: {exc!r}")
                return

    threads = [threading.Thread(target=client, args=(op,)) for op in ("status", "detail", "status", "detail")]
    feeder = threading.Thread(target=writer)
    try:
        feeder.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        feeder.join()
        cat.close()
    assert errors == []
    assert sorted(answered) == ["detail"] * 80 + ["status"] * 80


def test_a_full_backlog_gives_a_clear_busy_error_after_a_bounded_retry(tmp_path, monkeypatch):
    """A socket that listens but never accepts, backlog 0: connects fail with EAGAIN until the bound."""
    import companion.control as control

    path = Path(tempfile.mkdtemp(prefix="sw-busy-", dir="/tmp")) / "control.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    held = []
    monkeypatch.setattr(control, "CONNECT_RETRY_SECONDS", 0.5)
    try:
        for _ in range(8):  # fill the queue (its length is backlog + 1 on Linux)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(path))
                held.append(s)
            except BlockingIOError:
                s.close()
                break
        with pytest.raises(ServiceBusy, match="is busy: its backlog stayed full"):
            request(path, "ping", timeout=5)
    finally:
        for s in held:
            s.close()
        server.close()
        shutil.rmtree(path.parent, ignore_errors=True)


# -- random frames ------------------------------------------------------------------------

OPS = ["ping", "status", "jobs", "job_history", "events", "detail", "pieces", "action", "hook", "drills",
       "restore", "seed_companion", "nope", ""]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                            max_size=4), max_leaves=12)
fields = st.dictionaries(st.sampled_from(["id", "since", "last", "limit", "torrent_id", "files", "snapshot", "action",
                                          "event", "hash", "hash_v2", "name", "x"]), values, max_size=4)
messages = st.builds(lambda op, f: {"op": op, **f}, st.sampled_from(OPS), fields)
frames = st.one_of(
    messages.map(lambda m: json.dumps(m).encode()),
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=200).map(lambda t: t.replace("\n", " ").encode()),
    values.map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=6))
def test_random_frames_get_one_well_formed_answer_each(service, batch):
    """Each line gets one JSON object back, {"ok": true, ...} or {"ok": false, "error": a sentence};
    no frame breaks an op inside the service, and the connection keeps serving."""
    batch = [f for f in batch if not f.strip().startswith(b'{"op": "subscribe"')]
    replies = raw(service, b"".join(f + b"\n" for f in batch) + b'{"op": "ping"}\n', replies=len(batch) + 1)
    assert len(replies) == len(batch) + 1
    for reply in replies:
        assert isinstance(reply.get("ok"), bool)
        if not reply["ok"]:
            assert isinstance(reply["error"], str) and reply["error"] and not reply.get("internal"), reply
    assert replies[-1]["ok"] and replies[-1]["pid"]
