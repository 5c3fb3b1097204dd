"""The parity tier: PAR2 recovery data per torrent (par2cmdline-turbo, the binary and environment
the archive uses: companion.archive.par2), for damage the zones do not cover: bit rot, a partial
overwrite, and (par2's scan finds blocks at any offset) a header that grew or shrank.

Each file of 16 MiB or more gets its own recovery set; smaller files share one per up to 500
files. A set of S source blocks gets ceil(share x S) recovery blocks and repairs any that many
damaged blocks, wherever they are (a flipped bit or a bad sector costs one block), or one damaged
run of about share x S blocks. Blocks are as small as PAR2's own checksums allow (`_size_set`)
and big enough that a set has at most 128 recovery blocks (par2's work to make or repair a set is
its bytes times its recovery blocks, so it stays linear in the library's size): at the default
1 %, 32-80 KiB for files up to a few hundred MiB (whole 4 KiB sectors); a 4 GiB file's set
(512 KiB blocks) repairs 82 scattered bad blocks, or one 41 MiB overwrite. The PAR2 files are made from the payload as the catalog verified it
(refused when a file changed since) and kept in the store under parity/<torrent>/<set>/.

Repair never touches the payload: the set's files are symbolic links in a scratch folder (par2
renames a damaged target aside and writes the repaired file beside it), and the heal takes the
damaged pieces out of the repaired file, each proven by the torrent's own hashes first.
"""

import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..archive.par2 import Par2Layout, Par2Plan, par2_binary, predicted_bytes
from ..catalog import parity as rows
from ..childenv import child_env
from ..errors import DiskFull, Error, free_bytes
from ..scan import OK, Scanner, resolve_payload_path
from ..store.trusted import identity, trusted_files

log = logging.getLogger(__name__)

MIN_BLOCK = 4096
MAX_BLOCKS = 32768  # PAR2's source blocks per recovery set
CHECKSUM = 20  # bytes of PAR2's checksums per source block (MD5 + CRC32)
OVERHEAD = 0.3  # those checksums' copies: at most this share of the recovery data
MAX_RECOVERY = 128  # recovery blocks per set at most: making and repairing cost bytes x recovery blocks
OWN_SET = 16 * 1024 * 1024  # files this big or bigger get a recovery set of their own
GROUP_FILES = 500


class ParityError(Error):
    """parity of {}: {}"""


@dataclass
class SetPlan:
    name: str
    files: list  # [(file index, path as PAR2 names it, size)]
    block_size: int
    source_blocks: int
    recovery_blocks: int

    @property
    def capacity_bytes(self) -> int:
        """Contiguous damage this set repairs anywhere (one damaged run, block-aligned or not)."""
        return max(0, self.recovery_blocks - 1) * self.block_size


def _align4(n: int) -> int:
    return -(-n // 4) * 4


def _size_set(name: str, files: list, share: float) -> SetPlan:
    """Blocks as small as the share allows (more, smaller blocks repair more scattered damage) while
    PAR2's per-block checksums, which par2 repeats bit_length(recovery blocks) times in the recovery
    file, stay under OVERHEAD of the recovery data; at most PAR2's 32,768 blocks."""
    total = sum(size for _i, _p, size in files)
    block = max(MIN_BLOCK, -(-total // MAX_BLOCKS // MIN_BLOCK) * MIN_BLOCK)  # whole 4 KiB sectors
    while True:
        blocks = sum(max(1, -(-size // block)) for _i, _p, size in files)
        recovery = max(1, math.ceil(blocks * share / 100))
        checksums = blocks * CHECKSUM * (1 + recovery.bit_length())
        if blocks <= MAX_BLOCKS and (checksums <= OVERHEAD * recovery * block and recovery <= MAX_RECOVERY
                                     or blocks <= len(files)):
            return SetPlan(name, files, block, blocks, recovery)
        block *= 2


def plan_sets(meta, share_percent: float, files: set[int] | None = None) -> list[SetPlan]:
    """The recovery sets for a torrent's files (or these file indices) at this share (pure)."""
    if share_percent <= 0:
        return []
    entries = [e for e in meta.real_files if e.size > 0 and e.symlink is None and (files is None or e.index in files)]
    out, group = [], []
    for e in entries:
        if e.size >= OWN_SET:
            out.append(_size_set(f"f{e.index}", [(e.index, e.path, e.size)], share_percent))
        else:
            group.append((e.index, e.path, e.size))
    for i in range(0, len(group), GROUP_FILES):
        part = group[i : i + GROUP_FILES]
        out.append(_size_set(f"g{part[0][0]}-{part[-1][0]}", part, share_percent))
    return out


def predicted(plans: list[SetPlan]) -> int:
    """Bytes of the PAR2 files `keep_parity` writes for these sets (archive.par2's exact model)."""
    total = 0
    for p in plans:
        plan = Par2Plan(Par2Layout("single", (tuple(range(len(p.files))),)), p.block_size,
                        tuple(size for _i, _p, size in p.files), (p.recovery_blocks,), 0.0)
        total += predicted_bytes(plan, [path for _i, path, _s in p.files])
    return total


@dataclass
class KeptParity:
    torrent_id: str
    sets: int = 0
    bytes: int = 0
    source_bytes: int = 0
    seconds: float = 0.0
    plans: list = field(default_factory=list)


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=child_env("par2"))
    except OSError as exc:
        raise ParityError(what, exc.strerror or str(exc)) from exc


def keep_parity(store, catalog, meta, save_path, share_percent: float, files: set[int] | None = None,
                scanner=None) -> KeptParity:
    """Make the torrent's recovery sets from the payload as the catalog verified it (files changed
    since, or too recently for their stat to prove it, are verified again first) and keep them in
    the store, replacing its previous ones. Raises ParityError naming a file that does not match
    the torrent, or changed while par2 read it: nothing is kept then."""
    import time

    began = time.monotonic()
    save_path = Path(save_path)
    plans = plan_sets(meta, share_percent, files)
    out = KeptParity(meta.id, plans=plans)
    if not plans:
        return out
    wanted = {i for p in plans for i, _path, _s in p.files}
    entries = [e for e in meta.real_files if e.index in wanted]
    before = {e.index: identity(resolve_payload_path(save_path, e)) for e in entries}
    trusted = trusted_files(catalog, meta, save_path, entries, before)
    sha = {i: t.sha256 for i, t in trusted.items()}
    unsure = {e.index for e in entries if e.index not in trusted}
    if unsure:  # changed since the catalog's verification, or racily clean: verified here first
        result = (scanner or Scanner()).full_scan(meta, save_path, only_files=unsure)
        sha.update({fs.entry.index: fs.sha256 for fs in result.files if fs.status == OK})
        bad = [e.path for e in entries if e.index not in sha]
        if bad:
            raise ParityError(meta.name, f"{bad[0]} does not match the torrent; no recovery data kept")
    staging = Path(tempfile.mkdtemp(prefix="parity-", dir=store.backend.staging()))
    sets, put = [], []
    try:
        exe = par2_binary()
        for p in plans:
            where = staging / p.name
            where.mkdir()
            cmd = [exe, "create", "-q", "-q", f"-s{p.block_size}", f"-c{p.recovery_blocks}", "-n1", f"-B{save_path}",
                   "--", str(where / f"{p.name}.par2")] + [str(resolve_payload_path(save_path, e)) for e in entries
                                                             if e.index in {i for i, _x, _s in p.files}]
            result = _run(cmd, f"par2 create {meta.name} {p.name}")
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
                raise ParityError(meta.name, f"par2 create: {tail[0]}")
            names = sorted(f.name for f in where.iterdir())
            size = sum((where / n).stat().st_size for n in names)
            objects = [f"parity/{meta.id}/{p.name}/{n}" for n in names]
            put += [(obj, where / n) for obj, n in zip(objects, names)]
            sets.append({"name": p.name, "files": [[i, path, n, sha[i]] for i, path, n in p.files],
                         "block_size": p.block_size, "source_blocks": p.source_blocks,
                         "recovery_blocks": p.recovery_blocks, "bytes": size, "percent": share_percent,
                         "objects": objects})
        moved = [e.path for e in entries if identity(resolve_payload_path(save_path, e)) != before[e.index]]
        if moved:
            raise ParityError(meta.name, f"{moved[0]} changed while par2 read it; no recovery data kept (try again)")
        with store.backend.lock(store.lock_timeout, exclusive=False):  # prune removes PAR2 files no record names
            old = set(o for s in rows.parity_sets(catalog, meta.id) for o in s["objects"])
            for obj, path in put:
                store.backend.put_file(obj, path)
            rows.set_parity(catalog, meta.id, sets)
            for obj in old - {o for o, _p in put}:
                store.backend.delete(obj)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    out.sets = len(sets)
    out.bytes = sum(s["bytes"] for s in sets)
    out.source_bytes = sum(e.size for e in entries)
    out.seconds = time.monotonic() - began
    log.info("%s: %d recovery sets kept (%d bytes for %d)", meta.name, out.sets, out.bytes, out.source_bytes)
    return out


def drop(store, catalog, torrent_id: str) -> None:
    for obj in rows.drop_parity(catalog, torrent_id):
        store.backend.delete(obj)


def set_of(catalog, torrent_id: str, file_index: int, sha256: str | None) -> dict | None:
    """The recovery set holding this file, when it was made from this content."""
    for s in rows.parity_sets(catalog, torrent_id):
        for i, _path, _size, made_from in s["files"]:
            if i == file_index:
                return s if sha256 is None or made_from == sha256 else None
    return None


class Repairs:
    """Files repaired by par2 in a scratch folder, at most once per heal (call `close`)."""

    def __init__(self, store, catalog, meta, save_path, scratch: Path | None = None):
        self.store, self.catalog, self.meta, self.save_path = store, catalog, meta, Path(save_path)
        self.scratch = Path(scratch) if scratch else None
        self.done: dict[int, Path | None] = {}
        self.folders: list[Path] = []
        self.seconds = 0.0

    def file(self, file_index: int) -> Path | None:
        """The file as its recovery set rebuilds it (None when there is no usable set or par2
        cannot repair it)."""
        if file_index not in self.done:
            try:
                self.done[file_index] = self._repair(file_index)
            except Error as exc:
                log.warning("%s: parity repair failed: %s", self.meta.name, exc)
                self.done[file_index] = None
        return self.done[file_index]

    def _repair(self, file_index: int) -> Path | None:
        import time

        sha = {r["file_index"]: r["sha256"] for r in self.catalog.get_files(self.meta.id)}
        s = set_of(self.catalog, self.meta.id, file_index, sha.get(file_index))
        if s is None:
            return None
        entries = {e.index: e for e in self.meta.real_files}
        need = sum(size for _i, _p, size, _h in s["files"]) + sum(1 for _ in s["objects"]) * s["block_size"]
        root = self.scratch or Path(tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        free = free_bytes(root)
        if free is not None and free < need:
            raise DiskFull(root, need)
        began = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"parity-{self.meta.id[:12]}-", dir=root))
        self.folders.append(work)
        base = work / "files"
        base.mkdir()
        for obj in s["objects"]:  # copied: par2 does not follow links to its own files
            dst = work / Path(obj).name
            local = self.store.backend.local_path(obj)
            if local is not None and local.exists():
                shutil.copyfile(local, dst)
            else:
                dst.write_bytes(self.store.backend.get_bytes(obj))
        target = None
        for i, path, _size, _h in s["files"]:
            link = base / path
            link.parent.mkdir(parents=True, exist_ok=True)
            entry = entries.get(i)
            if entry is not None:
                os.symlink(resolve_payload_path(self.save_path, entry), link)  # read, never written, by par2
            if i == file_index:
                target = link
        index = work / f"{s['name']}.par2"
        result = _run([par2_binary(), "repair", "-q", "-q", f"-B{base}", "--", str(index)],
                      f"par2 repair {self.meta.name} {s['name']}")
        self.seconds += time.monotonic() - began
        if result.returncode != 0 or target is None or target.is_symlink() or not target.is_file():
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            log.info("%s: par2 cannot repair %s (exit %d: %s)", self.meta.name, s["name"], result.returncode,
                     tail[0] if tail else "-")
            return None
        return target

    def close(self) -> None:
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.folders.clear()
        self.done.clear()


__all__ = ["KeptParity", "ParityError", "Repairs", "SetPlan", "drop", "keep_parity", "plan_sets", "predicted",
           "set_of"]
