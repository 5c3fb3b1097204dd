"""The environment of every program seedward starts: named variables only, never seedward's secrets.

A child inherits nothing by default: it gets the few variables any program needs (PATH, locale,
time zone, HOME, TMPDIR) plus those its own configuration lives in (rclone's RCLONE_* and cloud
credentials, which are rclone's to use), plus what the caller passes. seedward's own secrets (the
WebUI password, the archive passphrase) never reach a child's environment: a child that needs one
gets it through a file descriptor (7z reads the passphrase on its stdin), and qbittorrent-nox gets
its WebUI password as a PBKDF2 hash in its 0600 profile.
"""

import os

# seedward's secrets in its own environment: never passed on, whatever a profile says.
SECRET_ENV = frozenset({"QBITTORRENTAPI_PASSWORD", "SEEDWARD_ARCHIVE_PASSPHRASE"})
# Variables of seedward itself (its home, the qBittorrent it talks to): no child's business either.
OWN_ENV = frozenset({"SEEDWARD_HOME", "QBITTORRENTAPI_HOST", "QBITTORRENTAPI_USERNAME", "SEEDWARD_NOTIFY_URLS"})

_taken: dict[str, str] = {}  # the secrets take_secrets() moved out of os.environ

BASE = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR")
NETWORK = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
           "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR")

# program -> (extra variable names, extra name prefixes)
PROFILES = {
    "7z": ((), ()),  # the passphrase goes to 7z on its stdin, never its environment or argv
    "git": ((), ()),
    "par2": ((), ()),
    "btrfs": ((), ()),  # read-only snapshots of the payload's subvolume (store/fssnap.py)
    "qbittorrent-nox": (("XDG_RUNTIME_DIR",), ()),
    # rclone reads its remotes from its config file or RCLONE_CONFIG_<REMOTE>_*; S3, GCS and Azure
    # remotes with env_auth read the cloud's own variables.
    "rclone": (("XDG_CONFIG_HOME", "XDG_CACHE_HOME", *NETWORK, "GOOGLE_APPLICATION_CREDENTIALS"),
               ("RCLONE_", "AWS_", "AZURE_")),
}


def take_secrets() -> None:
    """Move seedward's secrets out of os.environ (the first thing `seedward` does), so no child of any
    library ever inherits them; seedward reads them with secret_env()."""
    for key in SECRET_ENV:
        if key in os.environ:
            _taken[key] = os.environ.pop(key)


def secret_env(key: str, environ=None) -> str | None:
    """A secret from `environ` (default: os.environ, then what take_secrets() took)."""
    if environ is not None and environ is not os.environ:
        return environ.get(key)
    return os.environ.get(key) or _taken.get(key)


def child_env(program: str, extra: dict | None = None, environ=None) -> dict[str, str]:
    """The whole environment for `program` (a PROFILES key): its profile's variables taken from
    `environ` (default os.environ), then `extra`. Secret and seedward-own variables are dropped."""
    names, prefixes = PROFILES[program]
    environ = os.environ if environ is None else environ
    wanted = set(BASE) | set(names)
    env = {k: v for k, v in environ.items()
           if (k in wanted or k.startswith(prefixes)) and k not in SECRET_ENV and k not in OWN_ENV}
    for key, value in (extra or {}).items():
        if key in SECRET_ENV:
            raise ValueError(f"{key} must not be passed to {program} through its environment")
        env[key] = value
    return env


def contain_git() -> None:
    """Every git process GitPython starts (commits, cat-file readers) gets child_env("git"), the GIT_*
    variables and what GitPython itself sets (its locale), instead of a copy of seedward's whole
    environment. GitPython builds that copy inside `Git.execute`; its Popen is the one seam."""
    import git.cmd

    if getattr(git.cmd.safer_popen, "_seedward", False):
        return
    popen = git.cmd.safer_popen

    def contained(*args, env=None, **kwargs):
        if env is not None:
            own = {k: v for k, v in env.items() if k.startswith("GIT_") or os.environ.get(k) != v}
            env = {**child_env("git", environ=env), **{k: v for k, v in own.items() if k not in SECRET_ENV}}
        return popen(*args, env=env, **kwargs)

    contained._seedward = True
    git.cmd.safer_popen = contained
