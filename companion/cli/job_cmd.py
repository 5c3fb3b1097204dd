"""`seedward job run|show`: an AI job as a transaction over a torrent's payload."""

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_DAMAGE, EXIT_OK, BadInput, Error
from ..job import (DONE, INTERRUPTED, JobRunner, JobSpec, default_operator, parse_env, parse_params, show,
                   stdout_for)
from . import timefmt
from .context import print_json


def register(sub) -> None:
    p = sub.add_parser("job", help="run an AI job on a torrent's payload (read-only), show a job")
    verbs = p.add_subparsers(dest="job_verb", metavar="VERB", required=True)
    run_p = verbs.add_parser("run", help="preflight snapshot, sandboxed run, outputs with provenance",
                             usage="seedward job run --torrent ID --model NAME --model-version V [options] -- COMMAND [ARGS...]")
    run_p.add_argument("--torrent", required=True, metavar="ID", help="the original (any unique prefix of its id)")
    run_p.add_argument("--files", nargs="+", default=[], metavar="GLOB",
                       help="only these files of the torrent (globs; default: all)")
    run_p.add_argument("--model", required=True, metavar="NAME", help="the model's name (recorded in the provenance)")
    run_p.add_argument("--model-version", required=True, metavar="V", help="the model's version (recorded too)")
    run_p.add_argument("--model-digest", metavar="D", help="model file hash or container digest")
    prompt = run_p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", metavar="TEXT", help="the prompt given to the model (recorded)")
    prompt.add_argument("--prompt-file", metavar="F", help="read the prompt from file F")
    run_p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a model parameter to record (repeatable)")
    run_p.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                       help="give the command this variable (NAME alone: its value from seedward's environment); "
                       "the command gets nothing else of seedward's environment")
    run_p.add_argument("--network", action="store_true",
                       help="let the command reach the host's network (default: a private loopback only)")
    run_p.add_argument("--operator", metavar="NAME", help=f"who runs it (default: the user, here {default_operator()})")
    run_p.add_argument("--dry-run", action="store_true",
                       help="say what the job would do (files, sandbox, preflight); run, read and record nothing")
    run_p.add_argument("--json", action="store_true", help="print one JSON object")
    run_p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]",
                       help="the command to run, after --")
    run_p.set_defaults(func=run)
    show_p = verbs.add_parser("show", help="a job: state, provenance, outputs, companions")
    show_p.add_argument("job", metavar="JOB", help="any unique prefix of a job id")
    show_p.add_argument("--json", action="store_true", help="print one JSON object")
    show_p.set_defaults(func=run_show)


def run(args, ctx) -> int:
    """With --json one object is printed whatever happens: a job that ended, or why none could start."""
    try:
        return _run(args, ctx)
    except Error as exc:
        if not args.json:
            raise
        print_json({"id": None, "state": "not_started", "outputs": [], "error": str(exc)})
        print(f"seedward: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.json:
            print_json({"id": None, "state": "interrupted", "outputs": [], "error": "interrupted"})
        raise
    except Exception as exc:  # a bug: the object first (the job, if recorded, is `failed`), then the traceback
        if args.json:
            print_json({"id": getattr(exc, "job_id", None), "state": "failed", "outputs": [],
                        "error": f"{type(exc).__name__}: {exc}"})
        raise


def _run(args, ctx) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    prompt = args.prompt
    if args.prompt_file:
        try:
            prompt = Path(args.prompt_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(args.prompt_file, f"cannot read the prompt file: {getattr(exc, 'strerror', None) or exc}") from exc
    spec = JobSpec(torrent=args.torrent, command=command, model_name=args.model, model_version=args.model_version,
                   model_digest=args.model_digest, prompt=prompt, params=parse_params(args.param),
                   operator=args.operator or "", files=args.files, env=parse_env(args.env), network=args.network)
    if args.dry_run:
        return dry_run(args, ctx, spec)
    ctx.home.ensure()
    runner = JobRunner(catalog=ctx.catalog, manifests=ctx.manifests, settings=ctx.settings, home=ctx.home,
                       store=ctx.store, command_output=stdout_for(args.json), progress=ctx.progress.bar)
    outcome = runner.run(spec)
    if args.json:
        print_json(outcome.to_json())
    else:
        print(f"job {outcome.id}: {outcome.state}" + (f" ({outcome.reason})" if outcome.reason else ""))
        for o in outcome.outputs:
            print(f"  {o['sha256']}  {o['path']}")
    if outcome.state != DONE and outcome.reason:
        print(f"seedward: job {outcome.id} {outcome.state}: {outcome.reason}", file=sys.stderr)
    if outcome.state == INTERRUPTED:
        return 130
    if outcome.error is not None:
        return outcome.error.exit_code
    # failed, tainted or refused: a check failed (exit 1); the state says which
    return EXIT_OK if outcome.state == DONE else EXIT_DAMAGE


def dry_run(args, ctx, spec) -> int:
    runner = JobRunner(catalog=ctx.catalog, manifests=ctx.manifests, settings=ctx.settings, home=ctx.home)
    plan = runner.plan(spec)
    plan["preflight"]["snapshot"] = plan["refused"] is None  # a real run opens the store (not opened here)
    if args.json:
        print_json(plan)
        return EXIT_OK
    print(f"would run on {plan['name']} ({plan['torrent_id'][:12]}): {' '.join(plan['command'])}")
    print(f"  files       {len(plan['files'])} ({plan['bytes']:,} bytes), read-only")
    print(f"  sandbox     {plan['sandbox']}" + (f" ({plan['warning']})" if plan["warning"] else "")
          + ("; seeding stops while it runs" if plan["pauses_seeding"] else ""))
    print(f"  network     {'the host network' if plan['network'] else 'none (a private loopback)'}")
    pre = plan["preflight"]
    print(f"  preflight   verify {pre['verify_bytes']:,} bytes against the torrent"
          + (", then snapshot them" if pre["snapshot"] else ""))
    if plan["refused"]:
        print(f"  REFUSED     {plan['refused']}")
    print("(dry run: nothing run, read or recorded)")
    return EXIT_OK if not plan["refused"] else EXIT_DAMAGE


def run_show(args, ctx) -> int:
    from ..catalog.jobs import open_jobs
    from ..job import recover_stale

    if open_jobs(ctx.catalog):
        recover_stale(ctx.catalog, ctx.store)
    data = show(ctx.catalog, args.job)
    if args.json:
        print_json(data)
        return EXIT_OK
    print(f"job {data['id']}  [{data['state']}]" + ("  TAINTED" if data["tainted"] else ""))
    print(f"  torrent     {data['torrent_id']}")
    print(f"  model       {data['model_name']} {data['model_version']}" + (f" ({data['model_digest']})" if data['model_digest'] else ""))
    print(f"  operator    {data['operator']}")
    print(f"  command     {' '.join(data['command'])}")
    print(f"  sandbox     {data['sandbox'] or '-'}   exit code {data['exit_code'] if data['exit_code'] is not None else '-'}")
    print(f"  time        {timefmt.local(data['started_at'], seconds=True)} .. {timefmt.local(data['ended_at'], seconds=True)}")
    print(f"  preflight   {data['preflight_snapshot'] or '(verified full scan, no store snapshot)'}")
    if data["error"]:
        print(f"  why         {data['error']}")
    for o in data["outputs"]:
        print(f"  {o['sha256']}  {o['size']:>12,}  {o['path']}")
    for c in data["companions"]:
        print(f"  companion   {c['id']} ({c['kind']}, seeded by {c['seeded_by']})")
    return EXIT_OK
