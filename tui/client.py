"""The TUI's only way to the service: the control socket, asynchronously (one JSON object per line)."""

import asyncio
import json
import logging
from pathlib import Path

from companion.errors import Error, ServiceNotRunning

log = logging.getLogger(__name__)

# The status of 10,000 torrents is a few MB on one line.
LINE_LIMIT = 64 * 1024 * 1024


class ControlRefused(Error):
    """the service refused {!r}: {}"""


class UnknownOp(ControlRefused):
    """the service does not know the op {!r}: {}"""


class ControlClient:
    """request/response and subscribe over the service's Unix socket."""

    def __init__(self, socket_path: Path, timeout: float = 30.0):
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    async def _connect(self):
        try:
            return await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.socket_path), limit=LINE_LIMIT), self.timeout)
        except (FileNotFoundError, ConnectionRefusedError, asyncio.TimeoutError) as exc:
            raise ServiceNotRunning(f"no answer on {self.socket_path}") from exc
        except OSError as exc:
            raise ServiceNotRunning(f"{self.socket_path}: {exc.strerror or exc}") from exc

    async def request(self, op: str, **fields) -> dict:
        reader, writer = await self._connect()
        try:
            writer.write((json.dumps({"op": op, **fields}) + "\n").encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), self.timeout)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            raise ServiceNotRunning(f"{self.socket_path}: connection lost during {op!r}") from exc
        finally:
            writer.close()
        if not line:
            raise ServiceNotRunning(f"{self.socket_path}: closed without answering {op!r}")
        if len(line) > 256 * 1024:  # the status of thousands of torrents: parse off the event loop
            return await asyncio.to_thread(_answer, op, line)
        return _answer(op, line)

    async def subscribe(self) -> "Subscription":
        """Open the event stream; iterate the result for events, close it when done."""
        reader, writer = await self._connect()
        try:
            writer.write(b'{"op": "subscribe"}\n')
            await writer.drain()
        except ConnectionError as exc:
            writer.close()
            raise ServiceNotRunning(f"{self.socket_path}: event stream lost") from exc
        return Subscription(self.socket_path, reader, writer)


class Subscription:
    """The service's events, one dict per `{"event": KIND, ...}` line."""

    def __init__(self, socket_path, reader, writer):
        self.socket_path, self.reader, self.writer = socket_path, reader, writer

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        while True:
            try:
                line = await self.reader.readline()
            except ConnectionError as exc:
                raise ServiceNotRunning(f"{self.socket_path}: event stream lost") from exc
            if not line:
                raise ServiceNotRunning(f"{self.socket_path}: the service closed the event stream")
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("ignoring a malformed event line: %r", line[:80])
                continue
            if "event" in msg:
                return msg
            if msg.get("ok") is False:
                raise ControlRefused("subscribe", msg.get("error", "no reason given"))
            # anything else ({"ok": true} acknowledgements) carries no event

    def close(self) -> None:
        self.writer.close()


def _answer(op: str, line: bytes) -> dict:
    try:
        msg = json.loads(line)
    except ValueError as exc:
        raise ControlRefused(op, f"not JSON: {line[:80]!r}") from exc
    if not msg.get("ok", False):
        error = str(msg.get("error", "no reason given"))
        if "unknown op" in error.lower() or "unknown operation" in error.lower():
            raise UnknownOp(op, error)
        raise ControlRefused(op, error)
    return msg
