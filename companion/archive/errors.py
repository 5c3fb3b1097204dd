"""Archive errors: one line naming what and where; never the passphrase."""

from ..errors import EXIT_DAMAGE, EXIT_ERROR, Error


class ArchiveError(Error):
    """archive {}: {}"""


class NoPassphrase(Error):
    """no archive passphrase: give --passphrase-file FILE, set SEEDWARD_ARCHIVE_PASSPHRASE, or store one in the system keyring (service {!r}, user {!r})"""


class WrongPassphrase(Error):
    """archive set {}: wrong passphrase (its volumes are intact, but they do not decrypt with the passphrase given)"""

    exit_code = EXIT_ERROR


class ArchiveDamaged(Error):
    """archive set {}: damaged beyond its PAR2 redundancy: {}"""

    exit_code = EXIT_DAMAGE


class RemoteError(Error):
    """remote {}: {}"""


class SetNotFound(Error):
    """archive set {!r} not found {}"""


class IncompleteSet(Error):
    """archive set {} on {} is incomplete (no set manifest: an interrupted upload); `seedward archive prune` cleans it, the next `archive create` resumes it"""
