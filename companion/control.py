"""The control socket's client: the one door the CLI, the TUI and the hook use to reach the service.

Standard library only: the hook imports it on every qBittorrent add (asyncio is imported only by
`AsyncClient`'s methods). The server side is `companion/service/control.py`.

Protocol. A Unix stream socket at `home.socket` (mode 0600 in the 0700 home; no TCP port), one
JSON object per line (UTF-8, ending in `\\n`; JSON escapes any newline inside a string).
- Request `{"op": NAME, ...}`: at most MAX_REQUEST bytes and MAX_DEPTH levels of nesting. A
  longer request is answered with an error and the connection is closed: nothing of it runs.
  Each op's fields are checked against its schema (`companion/service/ops.py`); a wrong field
  gets `{"ok": false, "error": "OP: FIELD: what is wrong"}`.
- Response `{"ok": true, ...}` or `{"ok": false, "error": MESSAGE}` (with `"internal": true` when
  the op failed inside the service rather than on the request), of any size: the service
  writes big lists piece by piece and the client reads to the newline with no ceiling (the status
  of 100,000 torrents is tens of MB on one line).
- Connecting when the service's backlog is full fails with EAGAIN: clients retry, with a bound
  (CONNECT_RETRY_SECONDS), then say the service is busy.

Ops (the service's; features add theirs, see `seedward serve` in the README):
  ping                      -> {"pid", "version", "started_at"}
  status                    -> the `seedward status --json` object ({"service", "continuity", "torrents"})
  dashboard                 -> the same, compact: {"service", "continuity", "fields", "rows": [[...], ...]}
  hook   {"event": "added"|"finished", "hash", "hash_v2", "name", "save_path", "content_path"}
                            -> {"id", "job": job id or null (already queued)}
  events {"since": id, "limit": n, "last": n, "torrent_id": id, "after": ISO time}
                            -> {"events": [...]} (oldest first, id > since; `last`: the newest n)
  jobs                      -> {"jobs": [queued and running jobs]}
  job_history               -> {"ai": [AI jobs, newest first], "queue": [the work queue, newest first]}
  detail {"id": ID}         -> {"id", "files", "pieces", "events", "snapshots", "drills", "companions"}
  pieces {"id": ID}         -> {"id", "pieces": one char per piece: o ok, d damaged, h healing, u unverified}
  subscribe                 -> {"ok": true}, then one {"event": KIND, ...} line per service event
                               until either side closes
  action {"action": "verify"|"snapshot"|"heal"|"drill"|"stop"|"start", "id": ID}
                            -> {"job": queued job id or null, "id": full torrent id}
"""

import errno
import json
import socket
import time
from pathlib import Path

from .errors import Error, ServiceNotRunning

MAX_REQUEST = 1 << 20  # bytes of one request line
MAX_DEPTH = 32  # levels of nesting in one request
CONNECT_RETRY_SECONDS = 5.0  # how long a client retries a connect the full backlog refused (EAGAIN)
READ_BYTES = 1 << 20


class ControlError(Error):
    """seedward service: {}"""


class UnknownOp(ControlError):
    """seedward service: {}"""


class ServiceBusy(ControlError):
    """seedward service on {} is busy: {}"""


class NoAnswer(ControlError):
    """seedward service: {}"""


class ServiceFailed(ControlError):
    """seedward service: {}"""


def socket_path(home) -> Path:
    """`home` is a Home or the socket's path."""
    return Path(getattr(home, "socket", home))


def encode(obj: dict) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode()


def decode_reply(op: str, line: bytes) -> dict:
    """A response line -> its fields (without "ok"); raises ControlError when the service said no."""
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise ControlError(f"{op!r}: the answer is not JSON ({line[:80]!r})") from exc
    if not isinstance(reply, dict):
        raise ControlError(f"{op!r}: the answer is not a JSON object")
    if not reply.pop("ok", False):
        error = str(reply.get("error", "no reason given"))
        if reply.get("internal"):
            raise ServiceFailed(error)
        raise (UnknownOp if error.startswith("unknown op") else ControlError)(error)
    return reply


def connect(path: Path, timeout: float | None) -> socket.socket:
    """A connected socket; retries EAGAIN (the service's backlog is full) for a bounded time."""
    deadline = time.monotonic() + CONNECT_RETRY_SECONDS
    pause = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            sock.close()
            raise ServiceNotRunning(f"no service listening on {path}") from exc
        except BlockingIOError as exc:
            sock.close()
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK) or time.monotonic() > deadline:
                raise ServiceBusy(path, f"its backlog stayed full for {CONNECT_RETRY_SECONDS:.0f}s") from exc
        except OSError:
            sock.close()
            raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class LineReader:
    """Lines from a socket, each read whole however long it is."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def line(self) -> bytes:
        """The next line (without the newline); b"" when the other side closed."""
        parts, tail = [], self.buffer
        while True:
            end = tail.find(b"\n")
            if end >= 0:
                parts.append(tail[:end])
                self.buffer = tail[end + 1:]
                return b"".join(parts)
            parts.append(tail)
            tail = self.sock.recv(READ_BYTES)
            if not tail:
                self.buffer = b""
                return b""  # closed: a line without its newline is not a whole answer


def request(home, op: str, *, timeout: float = 30.0, **fields) -> dict:
    """Send one request to the running service; returns its response (without "ok").

    Raises ServiceNotRunning when nothing listens, ServiceBusy when it cannot take the call,
    NoAnswer on a timeout, ServiceFailed when the op broke inside the service, ControlError
    (UnknownOp) when the service refused the request."""
    path = socket_path(home)
    try:
        with connect(path, timeout) as sock:
            try:
                sock.sendall(encode({"op": op, **fields}))
            except (BrokenPipeError, ConnectionResetError):
                pass  # it may have closed after saying why (a request over MAX_REQUEST): read that
            line = LineReader(sock).line()
    except socket.timeout as exc:
        raise NoAnswer(f"no answer to {op!r} within {timeout:.0f}s") from exc
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise ServiceNotRunning(f"the service on {path} closed the connection") from exc
    if not line:
        raise ServiceNotRunning(f"the service on {path} closed the connection")
    return decode_reply(op, line)


def subscribe(home, timeout: float | None = None):
    """Yield service events ({"event": KIND, ...}) as they happen. Close the generator to stop."""
    path = socket_path(home)
    sock = connect(path, timeout)
    try:
        sock.sendall(encode({"op": "subscribe"}))
        reader = LineReader(sock)
        first = reader.line()
        if not first:
            raise ServiceNotRunning(f"the service on {path} closed the connection")
        decode_reply("subscribe", first)
        while True:
            line = reader.line()
            if not line:
                return
            yield json.loads(line)
    finally:
        sock.close()


class AsyncClient:
    """The same requests and event stream for an asyncio program (the TUI): no call blocks the loop."""

    # Answers bigger than this are parsed on a thread (the status of thousands of torrents).
    PARSE_ON_THREAD = 256 * 1024

    def __init__(self, home, timeout: float = 30.0):
        self.socket_path = socket_path(home)
        self.timeout = timeout

    async def _connect(self):
        import asyncio

        deadline = time.monotonic() + CONNECT_RETRY_SECONDS
        pause = 0.005
        while True:
            try:
                return await asyncio.wait_for(asyncio.open_unix_connection(str(self.socket_path), limit=READ_BYTES), self.timeout)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError, asyncio.TimeoutError) as exc:
                raise ServiceNotRunning(f"no answer on {self.socket_path}") from exc
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise ServiceBusy(self.socket_path, f"its backlog stayed full for {CONNECT_RETRY_SECONDS:.0f}s"
                                      ) from exc
            except OSError as exc:
                raise ServiceNotRunning(f"{self.socket_path}: {exc.strerror or exc}") from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def request(self, op: str, **fields) -> dict:
        import asyncio

        reader, writer = await self._connect()
        try:
            writer.write(encode({"op": op, **fields}))
            await writer.drain()
            line = await asyncio.wait_for(read_line(reader), self.timeout)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            raise ServiceNotRunning(f"{self.socket_path}: connection lost during {op!r}") from exc
        finally:
            writer.close()
        if not line:
            raise ServiceNotRunning(f"{self.socket_path}: closed without answering {op!r}")
        if len(line) > self.PARSE_ON_THREAD:
            return await asyncio.to_thread(decode_reply, op, line)
        return decode_reply(op, line)

    async def subscribe(self) -> "Subscription":
        """Open the event stream; iterate the result for events, close it when done."""
        reader, writer = await self._connect()
        try:
            writer.write(encode({"op": "subscribe"}))
            await writer.drain()
        except ConnectionError as exc:
            writer.close()
            raise ServiceNotRunning(f"{self.socket_path}: event stream lost") from exc
        return Subscription(self.socket_path, reader, writer)


async def read_line(reader) -> bytes:
    """One whole line (without the newline) from an asyncio stream, however long: readuntil stops
    at the reader's limit, so what it holds so far is taken and the search goes on."""
    import asyncio

    parts = []
    while True:
        try:
            parts.append(await reader.readuntil(b"\n"))
            return b"".join(parts)[:-1]
        except asyncio.IncompleteReadError:
            return b""  # closed: a line without its newline is not a whole answer
        except asyncio.LimitOverrunError as exc:
            parts.append(await reader.readexactly(exc.consumed))


class Subscription:
    """The service's events, one dict per `{"event": KIND, ...}` line."""

    def __init__(self, socket_path, reader, writer):
        self.socket_path, self.reader, self.writer = socket_path, reader, writer

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        while True:
            try:
                line = await read_line(self.reader)
            except ConnectionError as exc:
                raise ServiceNotRunning(f"{self.socket_path}: event stream lost") from exc
            if not line:
                raise ServiceNotRunning(f"{self.socket_path}: the service closed the event stream")
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not an event
            if "event" in msg:
                return msg
            if msg.get("ok") is False:
                raise ControlError(f"subscribe refused: {msg.get('error', 'no reason given')}")
            # anything else ({"ok": true} acknowledgements) carries no event

    def close(self) -> None:
        self.writer.close()
