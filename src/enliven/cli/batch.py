"""``enliven batch JOBS -o OUTDIR``: many animations, models loaded once per worker, resumable."""

from __future__ import annotations

import argparse
import sys

from enliven.cli.arguments import add_animation_options, options_from_args, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch",
        help="animate many (photo, clip) pairs: a CSV/JSONL job file or every pair of two folders",
        description="Run many animations. JOBS is a .csv (header: source, driving, optional output and option "
        "columns such as mode or paste_back) or .jsonl file (the same keys per line); or give --sources and "
        "--drivings folders for every pair. Each job's result is appended to OUTDIR/results.jsonl; a rerun skips "
        "the jobs done already (named by a hash of their inputs and options). The flags below are every job's "
        "defaults; a job file's columns override them.",
    )
    p.add_argument("jobs", nargs="?", help="the job file (.csv or .jsonl)")
    p.add_argument("-o", "--output", required=True, help="the output folder (results.jsonl and the videos)")
    p.add_argument("--sources", help="a folder of photos (with --drivings: every photo with every clip)")
    p.add_argument("--drivings", help="a folder of driving clips")
    p.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run the jobs as Ray tasks: 'local' (a Ray instance here with --workers CPUs), 'auto' (this machine's "
        "cluster) or HOST:PORT of a head node",
    )
    add_animation_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    # the model's threads are set where the model runs (this process with one worker, never with several)
    p.set_defaults(handler=run, threads_set_by_handler=True)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from enliven.batch import pair_jobs, read_jobs, run_batch
    from enliven.errors import InputError

    options = options_from_args(args)
    if args.jobs and (args.sources or args.drivings):
        raise InputError("give either a job file or --sources and --drivings, not both.")
    if args.jobs:
        jobs = read_jobs(args.jobs, base=options)
    elif args.sources and args.drivings:
        jobs = pair_jobs(args.sources, args.drivings, options)
    else:
        raise InputError("give a job file (.csv or .jsonl), or --sources DIR and --drivings DIR.")
    bar = None if args.quiet else tqdm(total=len(jobs), unit="job", desc="batch")

    def progress(result, done: int, total: int) -> None:
        if bar is not None:
            if bar.total != total:
                bar.reset(total)
            bar.update(1)
        if result.status == "failed":
            print(f"enliven: job {result.source} + {result.driving} failed: {result.error}", file=sys.stderr)

    try:
        summary = run_batch(
            jobs, args.output, workers=args.workers, ray_address=args.ray, threads=args.threads, on_result=progress
        )
    finally:
        if bar is not None:
            bar.close()
    rate = 60 * len(summary.results) / summary.seconds if summary.seconds > 0 else 0.0
    print(
        f"{summary.done} done, {summary.failed} failed, {summary.skipped} already done; {summary.seconds:.1f} s "
        f"({rate:.1f} jobs/min); results in {args.output}/results.jsonl"
    )
    return 1 if summary.failed else 0
