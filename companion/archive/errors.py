"""Archive errors: one line naming what and where; never the passphrase.

Exit codes of their own (README, exit codes): 12 wrong passphrase (restic's), 13 the remote cannot be
reached or refused a transfer, 14 the set is incomplete (an interrupted upload).
"""

from ..errors import EXIT_DAMAGE, Error

# how 7-Zip ("errno=28 : No space left on device"), par2 and rclone say the disk they write is full
_NO_SPACE = ("no space left on device", "errno=28", "disk quota exceeded", "not enough space")


def says_disk_full(text: str) -> bool:
    """Does a child program's error text say the disk it writes to is full?"""
    text = text.lower()
    return any(s in text for s in _NO_SPACE)

EXIT_WRONG_PASSPHRASE = 12
EXIT_REMOTE = 13
EXIT_INCOMPLETE = 14


class ArchiveError(Error):
    """archive {}: {}"""


class NoPassphrase(Error):
    """no archive passphrase: give --passphrase-file FILE, set SEEDWARD_ARCHIVE_PASSPHRASE, set [archive] passphrase_file, or store one in the system keyring (service {!r}, user {!r})"""


class WrongPassphrase(Error):
    """archive set {}: wrong passphrase (its volumes are intact, but they do not decrypt with the passphrase given)"""

    exit_code = EXIT_WRONG_PASSPHRASE


class ArchiveDamaged(Error):
    """archive set {}: damaged beyond its PAR2 redundancy: {}"""

    exit_code = EXIT_DAMAGE


class RemoteError(Error):
    """remote {}: {}"""

    exit_code = EXIT_REMOTE


class NoRemote(Error):
    """no archive remote: {}"""


class SetNotFound(Error):
    """archive set {!r} not found {}"""


class IncompleteSet(Error):
    """archive set {} on {} is incomplete (no set manifest: an interrupted upload); `seedward archive prune` cleans it, the next `archive create` resumes it"""

    exit_code = EXIT_INCOMPLETE


class SetLocked(Error):
    """archive set {} on {} is under S3 Object Lock until {}: it cannot be deleted or changed before then"""
