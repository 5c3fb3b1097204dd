"""Shared bits for benchmark scripts: machine facts and RESULTS.md sections."""

import json
import os
import platform
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_section(topic: str, body: str) -> None:
    """Replace this topic's section of RESULTS.md (or append it)."""
    start, end = f"<!-- bench:{topic} -->", f"<!-- /bench:{topic} -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder; each replaces only its own section.\n"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - t, value


def run_timed(cmd: list[str], **kwargs) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    return time.perf_counter() - t


def drop_note() -> str:
    return "Runs read from the page cache (files written just before); figures are wall-clock seconds."


def load_note() -> str:
    """How busy the machine was when the run started (1-minute load average)."""
    one, _five, _fifteen = os.getloadavg()
    return f"Load average when the run started: {one:.2f} on {os.cpu_count()} cores."


UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll until predicate() is truthy and return its value; a timeout ends the benchmark."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: timed out waiting for {what}")
        time.sleep(interval)


def parse_size(text: str) -> int:
    """'64M', '2G', '2GiB', '512k' or a plain number of bytes."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def make_payload(root: Path, size: int, files: int = 8, folder: str = "payload", name: str = "part {i:02d}.bin") -> Path:
    """`files` files of random bytes under root/folder (the last one shorter), written 16 MiB at a time."""
    content = root / folder
    content.mkdir(parents=True, exist_ok=True)
    per, left, i = -(-size // files), size, 0
    while left > 0:
        n = min(per, left)
        with open(content / name.format(i=i), "wb") as fh:
            for done in range(0, n, 16 * 2**20):
                fh.write(os.urandom(min(16 * 2**20, n - done)))
        left -= n
        i += 1
    return content


def serve(home, env: dict | None = None, timeout: float = 60.0) -> subprocess.Popen:
    """The real `seedward serve` on `home` in the background (its log in home/serve.log), returned
    once its control socket answers; `env`: extra environment (e.g. the WebUI password)."""
    import sys

    from companion.control import request
    from companion.errors import Error

    env = dict(os.environ, SEEDWARD_HOME=str(home.root), **(env or {}))
    with open(home.root / "serve.log", "ab") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "seedward"), "serve"], env=env, stdout=log,
                                stderr=log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            request(home, "ping", timeout=5)
            return proc
        except Error:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"benchmark: seedward serve did not start; see {home.root / 'serve.log'}")
            time.sleep(0.1)


# Runs the measured command as a child of a fresh, small Python: Linux records at exec the memory
# of the process that forked (ru_maxrss), so a command forked from a big benchmark process would
# report the benchmark's size instead of its own.
_LAUNCHER = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump([time.perf_counter() - t, ru.ru_utime + ru.ru_stime, ru.ru_maxrss], fh)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS KiB, stdout) of one command run to its end; its
    failure ends the benchmark with its stderr."""
    import sys
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as usage:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, usage.name, *cmd], stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed: {err.read().decode()[-500:]}")
        wall, cpu, rss = json.loads(usage.read())
        return wall, cpu, rss, out.read().decode()
