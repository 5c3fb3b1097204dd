"""What the store's verbs return (Snapshot, RestoreResult, HealResult, CheckResult, PruneResult,
ForgetResult) and the errors they raise."""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import EXIT_DAMAGE, BadInput, PayloadError
from .policy import Decision

REASONS = ("auto", "preflight", "manual")


class SnapshotRefused(PayloadError):
    """{}: {}"""

    exit_code = EXIT_DAMAGE


class ChunkCollision(BadInput):
    """chunk {}: {}"""


@dataclass
class Snapshot:
    id: str
    torrent_id: str
    created_at: str
    reason: str
    job_id: str | None  # the queue job's or the AI job's id
    bytes: int
    new_bytes: int
    name: str = ""
    files: int = 0
    save_path: str | None = None
    cloned_bytes: int = 0  # of new_bytes, cloned from the payload (reflinks) rather than written
    trusted_bytes: int = 0  # bytes taken unhashed on the catalog's verification (store/trusted.py)

    @classmethod
    def from_row(cls, row) -> "Snapshot":
        job = row["job_ref"] if "job_ref" in row.keys() and row["job_ref"] is not None else row["job_id"]
        return cls(row["id"], row["torrent_id"], row["created_at"], row["reason"],
                   None if job is None else str(job), row["bytes"],
                   row["new_bytes"], row["name"], row["files"], row["save_path"], row["cloned_bytes"],
                   row["trusted_bytes"] if "trusted_bytes" in row.keys() else 0)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RestoreResult:
    snapshot_id: str
    dest_dir: Path
    files: list[str]
    bytes: int
    seconds: float
    cloned_bytes: int = 0
    sha256: dict[str, str] = field(default_factory=dict)  # written path -> SHA-256 of the bytes written

    def to_json(self) -> dict:
        return {**asdict(self), "dest_dir": str(self.dest_dir)}


@dataclass
class HealResult:
    snapshot_id: str
    segments: list[tuple[int, int]]  # (file_index, piece) written back
    bytes: int
    files: list[str]
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class CheckResult:
    packs: int = 0
    chunks: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)
    bad_copies: list[list[str]] = field(default_factory=list)  # [pack, chunk id]: unreadable, wrong or missing

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass
class PruneResult:
    packs_deleted: int = 0
    packs_repacked: int = 0
    chunks_removed: int = 0
    bytes_freed: int = 0
    trees_deleted: int = 0
    dry_run: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ForgetResult:
    decisions: dict[str, Decision]  # torrent id -> decision
    removed: list[str]
    dry_run: bool

    def to_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "removed": self.removed,
            "torrents": {tid: {"keep": [{"id": sid, "reasons": r} for sid, r in d.keep], "remove": d.remove}
                         for tid, d in self.decisions.items()},
        }
