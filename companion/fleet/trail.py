"""The manifests audit trail on a fleet (issue 20): it stays per host. Each host's repository holds
the manifests of the torrents it owns, committed where the payload is (no cross-host writes, no
merges, commits as fast as on one host). With `[manifests] remote` set (any git URL: a bare
repository over ssh, https, or a shared path), the service pushes its history to the branch
`seedward/<owner>` there every `push_minutes` when it has new commits, so a host whose disk dies
leaves its trail behind: the adopting host starts its own trail with the adoption, and the dead
host's branch stays on the remote as it was."""

import logging

import git

from ..errors import Error

log = logging.getLogger(__name__)


class TrailPushFailed(Error):
    """manifests remote {}: {}"""


def branch(owner: str) -> str:
    return f"seedward/{owner or 'local'}"


PUSH_TIMEOUT_SECONDS = 300.0  # a push still running then is killed (and tried again next time)


def push(manifests, remote: str, owner: str) -> str | None:
    """Push the repository's HEAD to the owner's branch; returns the pushed commit (None: nothing yet).

    The manifests lock is held only to read HEAD: a slow or stuck remote must not hold up the
    commits of protect jobs (they wait for that lock)."""
    repo = manifests.repo
    with manifests._lock:
        if not repo.head.is_valid():
            return None
        head = repo.head.commit.hexsha
    try:
        repo.git.push("--quiet", remote, f"{head}:refs/heads/{branch(owner)}", kill_after_timeout=PUSH_TIMEOUT_SECONDS)
    except git.GitCommandError as exc:
        why = (exc.stderr or str(exc)).strip().splitlines()
        raise TrailPushFailed(remote, why[-1] if why else "git push failed") from exc
    return head
