"""The archive passphrase: --passphrase-file, SEEDWARD_ARCHIVE_PASSPHRASE, [archive] passphrase_file, or
the system keyring.

Never argv, never logs, never error messages, never a child's environment (7z reads it on stdin).
"""

import logging
import os
from pathlib import Path

from ..childenv import secret_env
from ..errors import BadInput
from .errors import NoPassphrase

log = logging.getLogger(__name__)

ENV = "SEEDWARD_ARCHIVE_PASSPHRASE"
KEYRING_SERVICE = "seedward-archive"
KEYRING_USER = "archive"


def get_passphrase(passphrase_file: str | None = None, env: dict | None = None, configured: str = "") -> str:
    """configured: [archive] passphrase_file, read after the flag and the environment variable."""
    if not passphrase_file and configured and not secret_env(ENV, env):
        passphrase_file = configured
    if passphrase_file:
        path = Path(passphrase_file).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise BadInput(path, f"cannot read passphrase file: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:  # never shown: it is the secret
            raise BadInput(path, "the passphrase file is not UTF-8 text") from exc
        if not lines or not lines[0]:
            raise BadInput(path, "the passphrase file is empty (the passphrase is its first line)")
        return lines[0]
    from_env = secret_env(ENV, env)  # seedward moved it out of os.environ at start (childenv.take_secrets)
    if from_env:
        return from_env
    secret = _from_keyring()
    if secret:
        return secret
    raise NoPassphrase(KEYRING_SERVICE, KEYRING_USER)


def _from_keyring() -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        except KeyringError as exc:
            log.debug("system keyring unavailable: %s", type(exc).__name__)
    except Exception as exc:  # a broken keyring backend must not stop the other two sources
        log.debug("system keyring unavailable: %s", type(exc).__name__)
    return None
