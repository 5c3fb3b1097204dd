"""The manifests repo: a JSON manifest per torrent, committed on every change (the audit trail)."""

import json
import os
import tempfile
import threading
from pathlib import Path

import git

from .childenv import contain_git
from .errors import DiskFull, Error, disk_full_as, is_disk_full

AUTHOR = git.Actor("seedward", "seedward@localhost")


class ManifestError(Error):
    """manifests repo {}: {}"""


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temp file, fsync, rename: readers see the old or the new file, never half."""
    with disk_full_as(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def torrent_manifest(meta, files) -> dict:
    """The human-readable manifest of a torrent: files is a list of catalog rows or FileScans."""
    out = []
    for f in files:
        entry = getattr(f, "entry", None)
        out.append({
            "path": entry.path if entry else f["path"],
            "size": entry.size if entry else f["size"],
            "sha256": f.sha256 if entry else f["sha256"],
        })
    return {
        "id": meta.id,
        "name": meta.name,
        "kind": meta.kind,
        "info_hash_v1": meta.info_hash_v1,
        "info_hash_v2": meta.info_hash_v2,
        "piece_size": meta.piece_length,
        "pieces": meta.num_pieces,
        "files": out,
    }


class ManifestRepo:
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)
        contain_git()  # git children get an explicit environment, never seedward's secrets
        try:
            if (self.path / ".git").exists():
                self.repo = git.Repo(self.path)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self.repo = git.Repo.init(self.path)
                with self.repo.config_writer() as cw:
                    cw.set_value("user", "name", AUTHOR.name)
                    cw.set_value("user", "email", AUTHOR.email)
        except git.GitCommandNotFound as exc:
            raise ManifestError(self.path, "no git command (seedward keeps this repo with git: install it, "
                                "or set GIT_PYTHON_GIT_EXECUTABLE)") from exc
        except (git.GitError, OSError) as exc:
            raise ManifestError(self.path, str(exc)) from exc
        # Commits go through git itself (its index keeps a cache of unchanged trees, so a commit
        # costs about the same with 10 manifests or 10,000), untouched by the user's git config.
        self.repo.git.update_environment(
            GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME=AUTHOR.name,
            GIT_AUTHOR_EMAIL=AUTHOR.email, GIT_COMMITTER_NAME=AUTHOR.name, GIT_COMMITTER_EMAIL=AUTHOR.email)

    def write(self, relpath: str, document: dict, message: str) -> str | None:
        """Write a JSON document and commit it when it changed. Returns the commit sha or None."""
        return self.write_many({relpath: document}, message)

    def write_many(self, documents: dict[str, dict | None], message: str) -> str | None:
        """Write (or delete, for None) several documents in one commit."""
        with self._lock:
            try:
                written, removed = [], []
                for relpath, document in documents.items():
                    target = self.path / relpath
                    if document is None:
                        if target.exists():
                            removed.append(relpath)
                        continue
                    data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
                    atomic_write(target, data, 0o644)
                    written.append(relpath)
                if removed:
                    self.repo.git.rm("-q", "--", *removed)
                if written:
                    self.repo.git.add("--", *written)
                if not self._staged():
                    return None
                self.repo.git.commit("-q", "--no-verify", "--no-gpg-sign", "-m", message)
                return self.repo.head.commit.hexsha
            except (git.GitError, OSError, ValueError) as exc:
                if is_disk_full(exc) or "No space left on device" in str(getattr(exc, "stderr", "")):
                    raise DiskFull(self.path, self._commit_needs(documents)) from exc
                raise ManifestError(self.path, str(exc)) from exc

    def _commit_needs(self, documents) -> int:
        """About what a commit writes: the documents (twice: file and object), git's index (rewritten
        whole) and some room for trees and the commit."""
        try:
            index = (self.path / ".git" / "index").stat().st_size
        except OSError:
            index = 0
        docs = sum(len(json.dumps(d, indent=2)) for d in documents.values() if d is not None)
        return 2 * docs + index + (64 << 10)

    def _staged(self) -> bool:
        """Does the index differ from HEAD (or hold anything, before the first commit)?"""
        if not self.repo.head.is_valid():
            return bool(self.repo.git.ls_files("--cached"))
        try:
            self.repo.git.diff("--cached", "--quiet")
        except git.GitCommandError as exc:
            if exc.status == 1:
                return True
            raise
        return False

    def log(self, relpath: str | None = None, limit: int = 50) -> list[dict]:
        if not self.repo.head.is_valid():
            return []
        commits = self.repo.iter_commits(paths=relpath, max_count=limit) if relpath else self.repo.iter_commits(max_count=limit)
        return [{"sha": c.hexsha, "at": c.committed_datetime.isoformat(), "message": c.message.strip()} for c in commits]


def torrent_relpath(torrent_id: str) -> str:
    return f"torrents/{torrent_id}.json"
