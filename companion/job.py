"""AI jobs as transactions: preflight snapshot, staged run, verify the originals, collect outputs
with provenance, store them, commit the sidecars.

A job never leaves the originals changed: the command sees them read-only (bubblewrap) or a
private copy (fallback), and after every run, failed or interrupted ones too, the originals are
verified against the preflight baseline and healed from the preflight snapshot if touched.

Job folder (`[jobs] workdir`, default <home>/jobs): <job id>/<companion name>/output/ is the
command's only writable folder, <job id>/<companion name>/provenance/<output>.provenance.json the
sidecars; the <companion name> folder is what `seedward publish` makes a torrent of.

Longer than 400 lines on purpose: the transaction's steps (preflight, run, verify, heal,
collect, store, commit) are one JobRunner whose rollback must see every step's state; the
sandbox and provenance parts already live in companion.sandbox and companion.provenance.
"""

import fnmatch
import hashlib
import json
import logging
import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import provenance, sandbox
from .catalog import jobs as rows
from .catalog.db_time import now_iso
from .errors import BadInput, Error, NotFound
from .filehash import sha256_file
from .manifests import atomic_write
from .quickscan import quick_scan
from .scan import Scanner
from .locate import catalog_meta
from .torrent import load_torrent

log = logging.getLogger(__name__)

DONE, FAILED, TAINTED, INTERRUPTED, REFUSED = "done", "failed", "tainted", "interrupted", "refused"
FINAL_STATES = (DONE, FAILED, TAINTED, INTERRUPTED, REFUSED)


class JobError(Error):
    """job {}: {}"""


@dataclass
class JobSpec:
    torrent: str  # any unique prefix of the original's id
    command: list[str]
    model_name: str
    model_version: str
    model_digest: str | None = None
    prompt: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    operator: str = ""
    files: list[str] = field(default_factory=list)  # globs over the torrent's file paths; empty: all
    env: dict[str, str] = field(default_factory=dict)  # the command's declared environment (beside ours)
    network: bool = False  # the host's network (else a private loopback only); [jobs] network = true also


@dataclass
class JobOutcome:
    id: str
    state: str
    outputs: list[dict]  # {"path": absolute path, "sha256"}
    reason: str | None = None
    exit_code: int | None = None
    error: Error | None = None  # seedward's own error that ended the job (its exit code is the command's)

    def to_json(self) -> dict:
        data = {"id": self.id, "state": self.state, "outputs": self.outputs}
        if self.state != DONE:
            data["error"] = self.reason
        return data


def jobs_root(home, settings) -> Path:
    return Path(settings.jobs.workdir).expanduser().absolute() if settings.jobs.workdir else home.root / "jobs"


def parse_env(items: list[str], environ=None) -> dict[str, str]:
    """`--env NAME=VALUE` or `--env NAME` (its value from seedward's environment, kept off argv)."""
    from .childenv import OWN_ENV, SECRET_ENV

    environ = os.environ if environ is None else environ
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise BadInput("--env", f"{item!r}: expected NAME=VALUE or NAME")
        if key in SECRET_ENV or key in OWN_ENV:
            raise BadInput("--env", f"{key} is seedward's own; a job never gets it")
        if not sep:
            if key not in environ:
                raise BadInput("--env", f"{key} is not set in seedward's environment")
            value = environ[key]
        out[key] = value
    return out


def hidden_places(home, settings, environ=None) -> list[Path]:
    """What a job must not see: seedward's state (home, store, scratch, other jobs, the control socket),
    the user's config folder (the documented place for the WebUI password, rclone's and qBittorrent's
    own configs), the secret files named in the config, the keyrings and the session bus that unlocks
    them, and the `[jobs] hide` paths."""
    environ = os.environ if environ is None else environ
    user_home = Path(environ.get("HOME") or Path.home())
    places = [home.root, home.socket, jobs_root(home, settings),
              Path(environ.get("XDG_CONFIG_HOME") or user_home / ".config"),
              user_home / ".local" / "share" / "keyrings", user_home / ".local" / "share" / "python_keyring",
              Path(f"/run/user/{os.getuid()}")]
    for configured in (settings.store.path, settings.drill.scratch, settings.qbittorrent.password_file,
                       settings.archive.rclone_config, environ.get("RCLONE_CONFIG"), *settings.jobs.hide):
        if configured:
            places.append(Path(configured).expanduser())
    return places


def companion_name(original_name: str, job_id: str) -> str:
    return f"{original_name}.seedward-{job_id[:8]}"


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput("--param", f"{item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def default_operator() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return str(os.getuid())


def select_files(meta, globs: list[str]):
    """The torrent's files matching any glob (over the path as the torrent lays it out, or relative to
    the torrent's folder). No glob: every file."""
    files = [f for f in meta.real_files if f.size > 0]
    if not globs:
        return files
    prefix = meta.name + "/"

    def matches(path: str) -> bool:
        rel = path[len(prefix):] if path.startswith(prefix) else path
        return any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(rel, g) for g in globs)

    chosen = [f for f in files if matches(f.path)]
    if not chosen:
        raise BadInput("--files", f"{' '.join(globs)}: no file of {meta.name} matches")
    return chosen


class JobRunner:
    """Runs one job against the catalog, the manifests repo and (when there is one) the snapshot store."""

    def __init__(self, *, catalog, manifests, settings, home, store=None, command_output=None, progress=None):
        """progress(description, total_bytes): a context manager giving a progress(done, total)
        callable for the reading passes (preflight, the check after the run); None: none."""
        self.catalog = catalog
        self.progress = progress
        self.manifests = manifests
        self.settings = settings
        self.home = home
        self.store = store
        self.command_output = command_output  # where the command's stdout goes (None: inherit)
        self._baseline: dict[str, dict[int, dict[int, str]]] = {}  # job id -> the preflight's xxh3

    def run(self, spec: JobSpec) -> JobOutcome:
        """Runs the job; once it is recorded, every end (seedward's own errors too) is an outcome."""
        recover_stale(self.catalog, self.store)
        if not spec.command:
            raise BadInput("job run", "no command given (put it after `--`)")
        if not spec.model_name.strip() or not spec.model_version.strip():
            raise BadInput("job run", "--model and --model-version must not be empty")
        torrent_id, torrent, meta, save_path, scope, mode, warning, exposed = self._prepare(spec)

        job_id = secrets.token_hex(8)
        workdir = jobs_root(self.home, self.settings) / job_id
        content = workdir / companion_name(meta.name, job_id)
        output = content / "output"
        output.mkdir(parents=True)
        os.chmod(workdir, 0o700)
        rows.add_job(self.catalog, job_id, torrent_id, command=list(spec.command), scope=[f.path for f in scope],
                     model_name=spec.model_name, model_version=spec.model_version, model_digest=spec.model_digest,
                     prompt=spec.prompt, params=spec.params, operator=spec.operator or default_operator(),
                     workdir=str(workdir), pid=os.getpid())
        self.catalog.add_event(torrent_id, "job_started", f"{meta.name}: job {job_id} ({spec.model_name} "
                               f"{spec.model_version}) on {len(scope)} files", job=job_id)
        verified = False  # once the originals were checked after the run
        try:
            refusal = self.preflight(job_id, torrent, meta, save_path, exposed)
            if refusal:
                return self._end(job_id, torrent_id, REFUSED, refusal)
            rows.update_job(self.catalog, job_id, state="running", sandbox=mode, started_at=now_iso())
            staging = sandbox.Staging(
                inputs=tuple((save_path / f.path, f.path) for f in scope), output=output,
                readonly=(save_path,), hidden=tuple(hidden_places(self.home, self.settings)),
                scratch=workdir / "scratch", network=spec.network or self.settings.jobs.network,
                env=tuple(sorted({**parse_env(self.settings.jobs.env), **spec.env}.items())))
            job_env = {"SEEDWARD_INPUT": sandbox.INSIDE_INPUT, "SEEDWARD_OUTPUT": sandbox.INSIDE_OUTPUT,
                       "SEEDWARD_JOB_ID": job_id, "SEEDWARD_MODEL": spec.model_name,
                       "SEEDWARD_MODEL_VERSION": spec.model_version, "SEEDWARD_PROMPT": spec.prompt or "",
                       "SEEDWARD_PARAMS": json.dumps(spec.params, sort_keys=True)}
            paused = self.pause_seeding(job_id, torrent_id) if mode == "copy" else None
            try:
                result = sandbox.run_staged(staging, spec.command, mode, job_env=job_env, warning=warning,
                                            stdout=self.command_output)
                rows.update_job(self.catalog, job_id, exit_code=result.exit_code, ended_at=now_iso(),
                                state="collecting")
                verified = True
                tainted = self.verify_originals(job_id, meta, save_path, exposed)
            finally:
                if paused is not None:
                    self.resume_seeding(job_id, torrent_id, paused)
            if tainted:
                return self._end(job_id, torrent_id, TAINTED, tainted, exit_code=result.exit_code)
            if result.interrupted:
                return self._end(job_id, torrent_id, INTERRUPTED, "interrupted while the command ran",
                                 exit_code=result.exit_code)
            if result.not_started:
                return self._end(job_id, torrent_id, FAILED, f"the command could not start: {result.not_started}",
                                 exit_code=result.exit_code)
            if result.exit_code != 0:
                return self._end(job_id, torrent_id, FAILED, f"the command exited with {result.exit_code}",
                                 exit_code=result.exit_code)
            outputs = self.collect(job_id, torrent, meta, scope, content)
            return self._end(job_id, torrent_id, DONE, None, exit_code=0, outputs=outputs)
        except KeyboardInterrupt:
            taint = None if verified else self.verify_originals(job_id, meta, save_path, exposed)
            return self._end(job_id, torrent_id, TAINTED if taint else INTERRUPTED, taint or "interrupted")
        except Error as exc:
            taint = None if verified else self.verify_originals(job_id, meta, save_path, exposed)
            outcome = self._end(job_id, torrent_id, TAINTED if taint else FAILED, taint or str(exc))
            outcome.error = exc
            return outcome
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"
            taint = None if verified else self.verify_originals(job_id, meta, save_path, exposed)
            self._end(job_id, torrent_id, TAINTED if taint else FAILED, taint or reason)
            exc.job_id = job_id  # for `job run --json`, which prints its object whatever happens
            raise

    def _prepare(self, spec: JobSpec):
        torrent_id = self.catalog.resolve_id(spec.torrent)
        torrent = self.catalog.get_torrent(torrent_id)
        if not torrent["torrent_file"] or not torrent["save_path"]:
            raise JobError(torrent_id[:12], "the catalog has no .torrent or save path for it")
        meta, save_path = catalog_meta(self.catalog, torrent_id)  # qBittorrent's renames applied
        scope = select_files(meta, spec.files)
        mode, warning = sandbox.choose_mode(self.settings.jobs.sandbox)
        # Without bwrap the command could write anywhere: every file of the torrent is exposed then.
        exposed = scope if mode == "bwrap" else [f for f in meta.real_files if f.size > 0]
        return torrent_id, torrent, meta, save_path, scope, mode, warning, exposed

    def plan(self, spec: JobSpec) -> dict:
        """What run(spec) would do, doing none of it (`job run --dry-run`): nothing is recorded,
        read, snapshotted or run."""
        if not spec.command:
            raise BadInput("job run", "no command given (put it after `--`)")
        torrent_id, torrent, meta, save_path, scope, mode, warning, exposed = self._prepare(spec)
        refusal = _refusal(torrent["protection"])
        return {"dry_run": True, "torrent_id": torrent_id, "name": meta.name, "command": list(spec.command),
                "files": [f.path for f in scope], "bytes": sum(f.size for f in scope), "sandbox": mode,
                "warning": warning or None, "network": bool(spec.network or self.settings.jobs.network),
                "preflight": {"verify_bytes": sum(f.size for f in exposed),
                              "snapshot": self.store is not None and refusal is None},
                "pauses_seeding": mode == "copy", "refused": refusal}

    def _reading(self, description: str, total: int):
        if self.progress is None:
            from contextlib import nullcontext

            return nullcontext(None)
        return self.progress(description, total)

    def _end(self, job_id, torrent_id, state, reason, exit_code=None, outputs=()) -> JobOutcome:
        fields = {"state": state, "error": reason}
        if rows.get_job(self.catalog, job_id)["ended_at"] is None:
            fields["ended_at"] = now_iso()
        rows.update_job(self.catalog, job_id, **fields)
        level = "info" if state == DONE else ("error" if state == TAINTED else "warning")
        self.catalog.add_event(torrent_id, f"job_{state}", f"job {job_id}: {state}" + (f" ({reason})" if reason else ""),
                               level=level, job=job_id)
        return JobOutcome(job_id, state, list(outputs), reason, exit_code)

    def pause_seeding(self, job_id, torrent_id):
        """Unsandboxed, the command could change the seeding files: stop the torrent in qBittorrent
        meanwhile, so no peer is served a changed piece. Returns the adapter (to resume) or None."""
        from .instances import connect

        settings = self.settings.qbittorrent
        if not (settings.password or settings.password_file):
            log.warning("job %s: qBittorrent is not configured: the torrent keeps seeding while the command "
                        "runs unsandboxed", job_id)
            return None
        try:
            qbt = connect(self.settings, self.home)  # several instances: every one holding it is stopped
            info = qbt.torrent(torrent_id)
            if info is None or info["state"].startswith("stopped"):
                return None
            qbt.stop(torrent_id)
        except Error as exc:
            log.warning("job %s: cannot stop the torrent in qBittorrent while the command runs unsandboxed: %s",
                        job_id, exc)
            return None
        self.catalog.add_event(torrent_id, "job_paused_seeding", f"job {job_id}: stopped in qBittorrent while "
                               "the command runs without a sandbox", level="warning", job=job_id)
        return qbt

    def resume_seeding(self, job_id, torrent_id, qbt) -> None:
        """Start it again once the originals are verified (and healed). A torrent left damaged stays stopped."""
        row = self.catalog.get_torrent(torrent_id)
        if row is not None and row["protection"] not in ("protected", "pending"):
            log.error("job %s: %s stays stopped in qBittorrent: it is %s", job_id, torrent_id[:12], row["protection"])
            return
        try:
            qbt.start(torrent_id)
        except Error as exc:
            log.error("job %s: cannot start %s again in qBittorrent: %s", job_id, torrent_id[:12], exc)

    def preflight(self, job_id, torrent, meta, save_path, exposed) -> str | None:
        """A fresh, verified record of the exposed files. Returns why the job is refused, or None.

        Verifies against the torrent's own hashes (not only our baseline), then snapshots them into
        the store (when there is one). Their xxh3 per segment become the post-run baseline."""
        state = torrent["protection"]
        refusal = _refusal(state)
        if refusal:
            return refusal
        indices = {f.index for f in exposed}
        with self._reading("preflight: verifying", sum(f.size for f in exposed)) as bar:
            if len(indices) == len(meta.real_files) or state == "pending":
                from .protect import catalog_torrent

                result = catalog_torrent(self.catalog, self.manifests, meta, save_path,
                                         reason=f"job {job_id} preflight", progress=bar)
            else:
                # Only the files in scope: recorded as the job's preflight, the catalog's baseline stays whole.
                result = Scanner().full_scan(meta, save_path, only_files=indices, progress=bar)
            if not result.ok:
                self.catalog.set_protection(meta.id, "damaged")
                self.catalog.add_event(meta.id, "drift", f"{meta.name}: job {job_id} preflight found "
                                       f"{len(result.bad_pieces)} bad pieces", level="error",
                                       bad_pieces=result.bad_pieces[:100])
        if not result.ok:
            return f"the payload does not match its torrent ({len(result.bad_pieces)} bad pieces)"
        self._baseline[job_id] = {f.entry.index: {s.piece: s.xxh3 for s in f.segments} for f in result.files}
        snapshot_id = None
        if self.store is not None:
            from .store import SnapshotRefused

            try:
                snapshot_id = self.store.snapshot(meta, save_path, "preflight", job_id=job_id, files=sorted(indices)).id
            except SnapshotRefused as exc:
                return str(exc)
        rows.update_job(self.catalog, job_id, preflight_snapshot=snapshot_id)
        return None

    def verify_originals(self, job_id, meta, save_path, exposed) -> str | None:
        """Quick verify of the exposed files against the preflight; heal what changed from the
        preflight snapshot. Returns the taint reason, or None when nothing changed."""
        baseline = self._baseline.get(job_id)
        if baseline is None:  # the preflight never finished: nothing was exposed
            return None
        with self._reading("checking the originals", sum(f.size for f in exposed)) as bar:
            check = quick_scan(meta, save_path, baseline, files=set(baseline), progress=bar)
        if check.ok:
            return None
        changed = [f for f in check.files if f.status != "ok"]
        names = ", ".join(Path(f.path).name for f in changed[:5])
        log.error("job %s changed the originals (%s): healing", job_id, names)
        rows.update_job(self.catalog, job_id, tainted=1)
        self.catalog.add_event(meta.id, "job_tainted", f"job {job_id} changed {len(changed)} original files: {names}",
                               level="error", job=job_id, pieces=check.bad_pieces[:100])
        snapshot_id = rows.get_job(self.catalog, job_id)["preflight_snapshot"]
        what = f"the command changed {len(changed)} original files ({names})"
        if self.store is None or snapshot_id is None:
            self.catalog.set_protection(meta.id, "damaged")
            return f"{what}; NOT healed: no snapshot store, the torrent is marked damaged"
        self.store.heal(snapshot_id, save_path, [(f.file_index, p) for f in changed for p, _o, _l in f.bad_segments])
        again = quick_scan(meta, save_path, baseline, files={f.file_index for f in changed})
        if not again.ok:
            self.catalog.set_protection(meta.id, "damaged")
            return f"{what}; the heal did not restore them, the torrent is marked damaged"
        self.catalog.add_event(meta.id, "healed", f"{meta.name}: job {job_id}'s changes undone from preflight "
                               f"snapshot {snapshot_id[:12]}", job=job_id)
        return f"{what}; healed from the preflight snapshot"

    def collect(self, job_id, torrent, meta, scope, content: Path) -> list[dict]:
        """Hash the outputs, write one sidecar each, store and commit them."""
        output = content / "output"
        files, skipped = sandbox.regular_files(output)
        rejected = content.parent / "rejected"
        for name in skipped:
            # Moved out of the companion folder (the link itself, never its target): not published, not stored.
            log.warning("job %s: %s is not a regular file with one link: moved to %s", job_id, name, rejected)
            (rejected / name).parent.mkdir(parents=True, exist_ok=True)
            os.rename(output / name, rejected / name)
        with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
            digests = list(pool.map(sha256_file, files))
        originals = {r["path"]: r for r in self.catalog.get_files(meta.id)}
        origin_docs = [{"path": f.path, "size": f.size, "sha256": originals[f.path]["sha256"]} for f in scope]
        job = rows.get_job(self.catalog, job_id)
        out_rows, documents, outcome = [], {}, []
        for path, digest in zip(files, digests):
            rel = path.relative_to(output).as_posix()
            os.chmod(path, 0o444)  # published bytes: keep them from casual edits
            doc = provenance.sidecar(job=job, torrent=torrent, originals=origin_docs,
                                     output={"path": rel, "size": path.stat().st_size, "sha256": digest})
            data = provenance.encode(doc)
            sidecar_rel = f"provenance/{rel}.provenance.json"
            atomic_write(content / sidecar_rel, data, 0o444)
            out_rows.append({"path": rel, "size": doc["output"]["size"], "sha256": digest, "sidecar": sidecar_rel,
                             "sidecar_sha256": hashlib.sha256(data).hexdigest()})
            documents[f"jobs/{job_id}/{sidecar_rel}"] = doc
            outcome.append({"path": str(path), "sha256": digest})
        rows.set_outputs(self.catalog, job_id, out_rows)
        documents[f"jobs/{job_id}/job.json"] = job_document(rows.get_job(self.catalog, job_id), out_rows, DONE)
        message = (f"job {job_id}: {len(out_rows)} outputs from {torrent['name']}\n\n"
                   f"job {job_id}\ntorrent {torrent['id']}\nmodel {job['model_name']} {job['model_version']}")
        sha = self.manifests.write_many(documents, message)
        if sha:
            self.manifests.repo.create_tag(f"job-{job_id}", ref=sha, message=f"seedward job {job_id}")
            rows.update_job(self.catalog, job_id, manifest_commit=sha)
        if self.store is not None and out_rows:
            rows.update_job(self.catalog, job_id, output_snapshot=self.store_outputs(job_id, torrent, content))
        return outcome

    def store_outputs(self, job_id, torrent, content: Path) -> str | None:
        """Outputs and sidecars into the snapshot store (the store keeps payloads as torrents lay them out)."""
        from .publish import build

        raw = build(content, original=torrent, job_id=job_id)
        meta = load_torrent(raw)
        # The store knows auto | preflight | manual; the job id says which job made them.
        snap = self.store.snapshot(meta, content.parent, "manual", job_id=job_id)
        return snap.id


def _refusal(state: str) -> str | None:
    """Why a torrent in this protection state cannot take a job, or None."""
    if state == "baseline_bad":
        return "the payload never matched its torrent (baseline_bad)"
    if state in ("damaged", "healing"):
        return f"the payload has drifted ({state}); heal it first"
    if state in ("removed", "excluded"):
        return f"the torrent is {state}"
    return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(catalog, store=None) -> list[str]:
    """Jobs whose seedward process died (kill -9, power loss) without recording an end: verify the
    originals they exposed against the catalog's baseline, heal from the preflight snapshot what
    changed, and record them `interrupted` (or `tainted`). Returns the ids recovered."""
    recovered = []
    for job in rows.open_jobs(catalog):
        if _alive(job["pid"]):
            continue
        torrent = catalog.get_torrent(job["torrent_id"])
        state, reason = INTERRUPTED, "seedward stopped while the job ran (recovered later)"
        if torrent is not None and torrent["torrent_file"] and job["state"] != "preflight":
            meta, _ = catalog_meta(catalog, job["torrent_id"])
            scope = set(json.loads(job["scope"]))
            exposed = [f for f in meta.real_files if f.size > 0 and (job["sandbox"] == "copy" or f.path in scope)]
            taint = _check_and_heal(catalog, store, job, meta, Path(torrent["save_path"]), exposed)
            if taint:
                state, reason = TAINTED, taint
        rows.update_job(catalog, job["id"], state=state, error=reason, ended_at=job["ended_at"] or now_iso())
        catalog.add_event(job["torrent_id"], f"job_{state}", f"job {job['id']}: {state} ({reason})",
                          level="warning", job=job["id"])
        recovered.append(job["id"])
    return recovered


def _check_and_heal(catalog, store, job, meta, save_path, exposed) -> str | None:
    baseline: dict[int, dict[int, str]] = {}
    wanted = {f.index for f in exposed}
    for seg in catalog.get_segments(meta.id):
        if seg["file_index"] in wanted:
            baseline.setdefault(seg["file_index"], {})[seg["piece"]] = seg["xxh3"]
    check = quick_scan(meta, save_path, baseline, files=set(baseline))
    if check.ok:
        return None
    changed = [f for f in check.files if f.status != "ok"]
    rows.update_job(catalog, job["id"], tainted=1)
    what = f"the originals changed while the job ran ({len(changed)} files)"
    if store is None or not job["preflight_snapshot"]:
        catalog.set_protection(meta.id, "damaged")
        return f"{what}; NOT healed: no preflight snapshot, the torrent is marked damaged"
    store.heal(job["preflight_snapshot"], save_path, [(f.file_index, p) for f in changed for p, _o, _l in f.bad_segments])
    if not quick_scan(meta, save_path, baseline, files={f.file_index for f in changed}).ok:
        catalog.set_protection(meta.id, "damaged")
        return f"{what}; the heal did not restore them, the torrent is marked damaged"
    return f"{what}; healed from the preflight snapshot"


def job_document(job, outputs: list[dict], state: str | None = None) -> dict:
    """The job as committed to the manifests repo and shown by `job show --json`."""
    data = {k: job[k] for k in job.keys() if k not in ("command", "scope", "params")}
    data["command"] = json.loads(job["command"])
    data["scope"] = json.loads(job["scope"])
    data["params"] = json.loads(job["params"])
    data["tainted"] = bool(job["tainted"])
    if state:
        data["state"] = state
    data["outputs"] = [dict(o) for o in outputs]
    return data


def show(catalog, job_id_prefix: str) -> dict:
    try:
        job_id = rows.resolve_job(catalog, job_id_prefix)
    except ValueError as exc:
        raise BadInput(job_id_prefix, f"ambiguous job id: {exc}") from None
    if job_id is None:
        raise NotFound(f"no job matches {job_id_prefix!r}")
    job = rows.get_job(catalog, job_id)
    outputs = [dict(o) for o in rows.get_outputs(catalog, job_id)]
    doc = job_document(job, outputs)
    doc["companions"] = [dict(c) for c in rows.list_companions(catalog, job_id=job_id)]
    return doc


def stdout_for(json_mode: bool):
    """With --json our stdout carries one object: the command's output goes to stderr then."""
    return sys.stderr if json_mode else None
