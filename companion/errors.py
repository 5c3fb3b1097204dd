"""One error tree. Each error carries its exit code; only cli.main exits.

Exit codes (documented in the README):
  0 ok, 1 damage found / a check failed, 2 bad input or error,
  3 service not running, 4 qBittorrent unreachable or refused us,
  5 store corrupt, 11 locked.
"""

EXIT_OK = 0
EXIT_DAMAGE = 1
EXIT_ERROR = 2
EXIT_NO_SERVICE = 3
EXIT_QBT = 4
EXIT_STORE_CORRUPT = 5
EXIT_LOCKED = 11


class Error(Exception):
    """Error: {}"""

    exit_code = EXIT_ERROR

    def __init__(self, *args):
        super().__init__(*args)
        self.args = args

    def message(self) -> str:
        return self.__doc__.format(*self.args)

    def __str__(self) -> str:
        return self.message()


class BadInput(Error):
    """{}: {}"""


class BadTorrent(BadInput):
    """{}: not a valid torrent: {}"""


class UnsafePath(BadInput):
    """{}: unsafe path in torrent or payload: {}"""


class PayloadError(BadInput):
    """{}: {}"""


class ConfigError(Error):
    """{}: bad configuration: {}"""


class NotFound(Error):
    """{}"""


class Ambiguous(Error):
    """{}"""


class ServiceNotRunning(Error):
    """the seedward service is not running ({}); start it with `seedward serve`"""

    exit_code = EXIT_NO_SERVICE


class QbtError(Error):
    """qBittorrent at {}: {}"""

    exit_code = EXIT_QBT


class StoreCorrupt(Error):
    """store {}: {}"""

    exit_code = EXIT_STORE_CORRUPT


class Locked(Error):
    """{} is locked by {}"""

    exit_code = EXIT_LOCKED
