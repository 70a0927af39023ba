"""``enliven serve``: the REST job server (FastAPI + uvicorn), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import os
import sys

from enliven.cli.arguments import positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="a REST server: POST /v1/jobs, GET /v1/jobs/ID(/result), DELETE, POST /v1/animate-frame",
        description="Serve the REST API (OpenAPI docs at /docs). Jobs are kept in DATA/jobs.sqlite and run by "
        "worker processes; a restart loses no accepted job. Needs the 'server' extra.",
    )
    p.add_argument("--data", required=True, help="the folder for the job database, accepted inputs and results")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--workers", type=positive_int, default=1, help="job worker processes (default 1)")
    p.add_argument("--inputs", default=None, help="a folder whose files jobs may name (source_name, driving_name)")
    p.add_argument(
        "--token",
        default=os.environ.get("ENLIVEN_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' (default: $ENLIVEN_TOKEN; none: no authentication)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="the model for jobs that name none (default auto: chosen for each job's photo) and for animate-frame "
        "(default enliven-lite)",
    )
    p.add_argument("--max-upload-mb", type=positive_int, default=200, help="largest upload (default 200 MB)")
    p.add_argument("--max-video-seconds", type=positive_float, default=120.0, help="longest clip (default 120 s)")
    p.add_argument(
        "--jobs-per-worker",
        type=positive_int,
        default=50,
        help="a worker process is replaced by a fresh one after this many jobs (bounds its memory; default 50)",
    )
    p.add_argument(
        "--live",
        nargs="+",
        default=(),
        metavar="PHOTO",
        help="also serve the live page at /live/ (the browser's webcam animates these photos, as 'enliven live "
        "--serve' does; needs the live extra)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from enliven.preprocess import MissingDependencyError

    try:
        import uvicorn

        from enliven.server import ServerConfig, create_app
    except ImportError as error:
        message = f"enliven serve needs the server extra: pip install 'enliven[server]' ({error})."
        raise MissingDependencyError(message) from None
    if args.host not in {"127.0.0.1", "localhost", "::1"} and not args.token:
        print(f"enliven: warning: serving on {args.host} without --token: anyone who reaches it can use it.",
              file=sys.stderr)  # fmt: skip
    config = ServerConfig(
        data_dir=args.data,
        inputs_dir=args.inputs,
        token=args.token,
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        max_video_seconds=args.max_video_seconds,
        model=args.model,
        jobs_per_worker=args.jobs_per_worker,
        live_avatars=tuple(args.live),
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0
