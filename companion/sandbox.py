"""Run a job's command with read-only inputs and one writable output folder.

With bubblewrap (`bwrap`): a private mount namespace where the whole filesystem is bound
read-only, the inputs appear read-only under SEEDWARD_INPUT, the output folder (and a private
TMPDIR) are the only writable places, seedward's own places (the state home, config and
secret files, the control socket) are not there at all, the network is a private namespace with
only a loopback of its own unless the job asks for the host's, the environment is only what the
job declares, and every capability is dropped (so even root cannot remount anything writable).
Without bwrap, or where it cannot create namespaces, the fallback is a private read-only copy of
the inputs (a real copy, never a hard link, so writing to it cannot reach the originals); the
caller verifies the originals afterwards either way.
"""

import glob
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, Error, disk_full_as

log = logging.getLogger(__name__)

INSIDE_ROOT = "/seedward"  # inside the sandbox, on its own (read-only) tmpfs root
INSIDE_INPUT = f"{INSIDE_ROOT}/input"
INSIDE_OUTPUT = f"{INSIDE_ROOT}/output"
INSIDE_TMP = f"{INSIDE_ROOT}/tmp"  # TMPDIR and HOME (the host's are read-only in there)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


class SandboxUnavailable(Error):
    """bubblewrap sandbox unavailable: {}"""


@dataclass(frozen=True)
class Staging:
    """What the command sees: inputs (host path -> path relative to the input folder), one output folder,
    host paths that must stay unwritable (the seeding paths) or absent (the state home, secret files),
    and the command's whole environment."""

    inputs: tuple[tuple[Path, str], ...]
    output: Path
    readonly: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()  # folders get an empty tmpfs, files /dev/null
    scratch: Path | None = None  # the fallback's copy of the inputs goes here
    network: bool = False
    env: tuple[tuple[str, str], ...] = ()  # beside PATH, HOME, TMPDIR, LANG and the SEEDWARD_* job variables


@dataclass
class SandboxResult:
    exit_code: int
    mode: str  # bwrap | copy
    interrupted: bool = False
    warning: str | None = None
    not_started: str | None = None  # why the command could not start (the fallback knows before it runs)


def probe_bwrap() -> str | None:
    """None when bwrap can build our sandbox here, else why not (one line)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (Debian package bubblewrap)"
    try:
        proc = subprocess.run([exe, *root_options(network=True), "--dir", INSIDE_OUTPUT, "--remount-ro", "/", "--", "true"],
                              capture_output=True, text=True, timeout=30, env={"PATH": DEFAULT_PATH})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to start: {exc}"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return f"bwrap cannot create namespaces here: {lines[-1] if lines else proc.returncode}"
    return None


def root_options(*, network: bool) -> list[str]:
    """A fresh root (a tmpfs, read-only in the end) holding the host's top-level folders bound
    read-only, so we can make /seedward/... mount points without touching the host. Without
    `network` the command gets a network namespace of its own: a loopback nobody else listens on."""
    argv = ["--tmpfs", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if network:
        argv.append("--share-net")
    for name in sorted(os.listdir("/")):
        host = f"/{name}"
        if name in ("dev", "proc", "seedward") or name.startswith("."):
            continue
        if os.path.islink(host):
            argv += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            argv += ["--ro-bind", host, host]
    return argv


def hiding_options(hidden) -> list[str]:
    """Mount nothing over each hidden place that exists: an empty tmpfs over a folder, /dev/null over a
    file (a socket too). Paths are resolved (a symlink then leads to the hidden target); a place inside
    another hidden one is already gone."""
    places = []
    for path in hidden:
        real = os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))
        if real == "/" or not os.path.lexists(real):
            continue
        places.append(real)
    argv, done = [], []
    for real in sorted(set(places), key=lambda p: (p.count("/"), p)):
        if any(real == d or real.startswith(d.rstrip("/") + "/") for d in done):
            continue
        done.append(real)
        argv += ["--tmpfs", real] if os.path.isdir(real) else ["--ro-bind", "/dev/null", real]
    return argv


def choose_mode(setting: str) -> tuple[str, str | None]:
    """(mode, warning) for the `[jobs] sandbox` setting: auto | bwrap | none."""
    if setting not in ("auto", "bwrap", "none"):
        raise BadInput("[jobs] sandbox", f"{setting!r} is not auto, bwrap or none")
    if setting == "none":
        return "copy", "sandbox disabled by configuration ([jobs] sandbox = \"none\")"
    why = probe_bwrap()
    if why is None:
        return "bwrap", None
    if setting == "bwrap":
        raise SandboxUnavailable(why)
    return "copy", why


def bwrap_options(staging: Staging, job_env: dict[str, str]) -> list[str]:
    """bwrap's options for this staging (everything before `--` COMMAND). The environment is not
    among them: bwrap itself is started with exactly the command's environment."""
    argv = root_options(network=staging.network)
    # GPUs for model runners (NVIDIA, DRM render nodes, ROCm): device access, no filesystem write access.
    for dev in sorted(glob.glob("/dev/nvidia*")) + ["/dev/dri", "/dev/kfd"]:
        if os.path.exists(dev):
            argv += ["--dev-bind", dev, dev]
    argv += hiding_options(staging.hidden)
    hidden = [Path(os.path.realpath(h)) for h in staging.hidden]
    # Already read-only through their top-level folder; bound again in case they live under a hidden
    # place that is not theirs (the inputs are bound on their own under the input folder).
    for path in staging.readonly:
        path = Path(os.path.abspath(path))
        if path.is_dir() and not any(path.is_relative_to(h) or Path(os.path.realpath(path)).is_relative_to(h)
                                     for h in hidden):
            argv += ["--ro-bind", str(path), str(path)]
    for host, rel in staging.inputs:
        argv += ["--ro-bind", os.path.abspath(host), f"{INSIDE_INPUT}/{rel}"]
    argv += ["--dir", INSIDE_INPUT, "--tmpfs", INSIDE_TMP, "--bind", os.path.abspath(staging.output), INSIDE_OUTPUT,
             "--remount-ro", "/", "--chdir", INSIDE_OUTPUT]
    return argv


def command_env(staging: Staging, job_env: dict[str, str], *, tmp: str = INSIDE_TMP) -> dict[str, str]:
    """The command's whole environment: nothing of seedward's, only what the job declares."""
    env = {"PATH": DEFAULT_PATH, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8"}
    env.update(staging.env)
    env.update(job_env)
    return env


def copy_inputs(staging: Staging) -> Path:
    """The fallback: a private copy of the inputs, made read-only. Returns the input folder."""
    if staging.scratch is None:
        raise ValueError("the copy fallback needs a scratch folder")
    root = staging.scratch / "input"
    if root.exists():
        make_writable(root)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    try:
        with disk_full_as(root, lambda: sum(os.path.getsize(h) for h, _rel in staging.inputs)):
            for host, rel in staging.inputs:
                dest = root / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(host, dest)  # new bytes (never a hard link): writing the copy cannot reach the original
                os.chmod(dest, 0o444)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # no partial copy left behind
        raise
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o555)
    return root


def make_writable(root: Path) -> None:
    for dirpath, dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)


def run_staged(staging: Staging, command: list[str], mode: str, *, job_env: dict[str, str],
               warning: str | None = None, stdout=None, stderr=None) -> SandboxResult:
    """Run the command staged; Ctrl-C / SIGTERM end it and come back as interrupted. A command that
    cannot start comes back with exit code 127 and `not_started` saying why."""
    if not command:
        raise BadInput("job", "no command given (put it after `--`)")
    staging.output.mkdir(parents=True, exist_ok=True)
    if mode == "bwrap":
        env = command_env(staging, job_env)
        # The options go through a file descriptor (`--args`): no argv limit for many inputs.
        options = tempfile.TemporaryFile()
        options.write(b"".join(a.encode() + b"\0" for a in bwrap_options(staging, job_env)))
        options.flush()
        options.seek(0)
        argv = [shutil.which("bwrap") or "bwrap", "--args", str(options.fileno()), "--", *command]
        pass_fds = (options.fileno(),)
        cwd = None
    else:
        log.warning("running WITHOUT a sandbox (%s): the command gets a private read-only copy of its inputs, "
                    "the seeding paths are NOT protected from it while it runs, it can read what the user can "
                    "read and reach the network; the originals are verified afterwards and healed if touched",
                    warning or "no bwrap")
        input_dir = copy_inputs(staging)
        tmp = staging.scratch / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = command_env(staging, {**job_env, "SEEDWARD_INPUT": str(input_dir),
                                    "SEEDWARD_OUTPUT": str(staging.output)}, tmp=str(tmp))
        argv, cwd, pass_fds, options = list(command), staging.output, (), None
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe is None and not Path(argv[0]).exists():
            _clean_copy(staging)
            return SandboxResult(127, mode, warning=warning, not_started=f"{argv[0]}: command not found")
    interrupted, previous = False, None
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True,
                                pass_fds=pass_fds, preexec_fn=_die_with_parent if mode == "copy" else None)
    except OSError as exc:
        _clean_copy(staging)
        if options is not None:
            options.close()
        return SandboxResult(127, mode, warning=warning, not_started=f"{argv[0]}: {exc.strerror or exc}")
    try:
        # From here on a Ctrl-C anywhere ends the command's group (it has a session of its own: the
        # terminal's SIGINT never reaches it, and it holds our stdout until it ends).
        if options is not None:
            options.close()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
        code = proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        _end(proc)
        code = proc.returncode if proc.returncode is not None else -signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _clean_copy(staging)
    return SandboxResult(code, mode, interrupted, warning)


def _clean_copy(staging: Staging) -> None:
    """The fallback's private copy and temporary folder go once the command ended."""
    if staging.scratch is None:
        return
    for name in ("input", "tmp"):
        folder = staging.scratch / name
        if folder.exists():
            make_writable(folder)
            shutil.rmtree(folder, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when seedward dies (bwrap's --die-with-parent, for the fallback)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _end(proc: subprocess.Popen) -> None:
    """Stop the command's whole process group: TERM, then KILL after a grace period."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def regular_files(root: Path) -> tuple[list[Path], list[str]]:
    """Regular files under root (sorted) and the paths skipped (symlinks, hard links, devices, fifos)."""
    files, skipped = [], []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            st = path.lstat()
            # A hard link could be an original's inode (the fallback shares its filesystem): never take it.
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                files.append(path)
            else:
                skipped.append(str(path.relative_to(root)))
        for name in list(dirs):
            if (Path(dirpath) / name).is_symlink():
                skipped.append(str((Path(dirpath) / name).relative_to(root)))
    return files, skipped
