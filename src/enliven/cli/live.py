"""``enliven live SOURCE``: a camera (or the browser's webcam) animates the photo in real time."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from enliven.backends import backend_names
from enliven.cli.arguments import (
    add_device_argument,
    add_threads_argument,
    expression_edit,
    model_size,
    positive_float,
)

OUTPUT_FLAGS = "--window, --serve, --virtual-camera, --stream URL or --record FILE"


def register(subparsers: argparse._SubParsersAction) -> None:
    from enliven.live.window import KEYS_HELP

    p = subparsers.add_parser(
        "live",
        help="animate a photo live with a webcam, a stream or a video file as the camera",
        description="Animate SOURCE (an image, several, or a folder of images: switch avatars live) with a camera, "
        f"and show the result in any combination of outputs: {OUTPUT_FLAGS}. Window keys: {KEYS_HELP}.",
    )
    p.add_argument("source", nargs="+", help="source image(s), or a folder of images")
    p.add_argument(
        "--camera",
        default=None,
        help="a device index (0), a video file (played at its own frame rate) or a stream URL (default 0; with "
        "--serve the browser's webcam is the camera)",
    )
    p.add_argument("--loop", action="store_true", help="repeat a video-file camera instead of ending at its end")
    out = p.add_argument_group("outputs (any combination)")
    out.add_argument("--window", action="store_true", help="an OpenCV window with hotkeys and an fps readout")
    out.add_argument("--serve", action="store_true", help="a local web page: the browser's webcam drives the photo")
    out.add_argument("--host", default="127.0.0.1", help="address the web page binds to (default 127.0.0.1)")
    out.add_argument("--port", type=int, default=8080, help="port of the web page (default 8080)")
    out.add_argument(
        "--virtual-camera",
        nargs="?",
        const="",
        default=None,
        metavar="DEVICE",
        help="send to a virtual camera (v4l2loopback, OBS Virtual Camera); optionally its device, e.g. /dev/video9",
    )
    out.add_argument("--stream", metavar="URL", help="push H.264 to an rtmp://, rtmps:// or srt:// server")
    out.add_argument("--record", metavar="FILE", help="record what is shown (.mp4/.webm/.mkv) with the camera's sound")
    look = p.add_argument_group("what is shown")
    look.add_argument(
        "--overlay",
        choices=("none", "pip", "face"),
        default="none",
        help="the avatar alone, picture-in-picture on the camera frame, or pasted over the live face (default none)",
    )
    look.add_argument(
        "--corner",
        choices=("top-left", "top-right", "bottom-left", "bottom-right"),
        default="bottom-right",
        help="picture-in-picture corner",
    )
    look.add_argument("--pip-scale", type=float, default=0.33, help="picture-in-picture height / frame height")
    look.add_argument(
        "--paste-back",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show the animated face in the whole photo (default on), or the square crop",
    )
    look.add_argument("--no-stats", action="store_true", help="hide the window's fps / latency readout")
    look.add_argument(
        "--edit",
        type=expression_edit,
        default=None,
        metavar="EDITS",
        help="expression and pose controls on your face's motion, e.g. expression=1.5 (exaggerate), "
        "expression=0.5,head=0.5 (calm), smile=0.4 (the page has sliders for them); face-mesh models",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--model",
        default=None,
        help="auto (the default: the face model for a face photo, the body model for a person, else the generic "
        "model), a model name (see 'enliven models') or a checkpoint path",
    )
    model.add_argument("--absolute", action="store_true", help="absolute motion instead of relative to a reference")
    model.add_argument(
        "--adapt-scale", action=argparse.BooleanOptionalAction, default=True, help="scale the movement to the source"
    )
    model.add_argument("--size", type=model_size, default=None, help="side of the square the model runs at")
    model.add_argument(
        "--backend",
        choices=backend_names(),
        default="torch",
        help="torch, onnx, tflite[-fp16|-int8] or tensorflow (default torch)",
    )
    add_device_argument(model)
    add_threads_argument(model)
    run_group = p.add_argument_group("running")
    run_group.add_argument("--seconds", type=positive_float, default=None, help="stop after this many seconds")
    run_group.add_argument(
        "--bench",
        action="store_true",
        help="stamp each camera frame's index into it and print delivered fps, dropped share, capture-to-output "
        "latency per output and peak memory at the end",
    )
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=run)


def _check_arguments(args: argparse.Namespace) -> None:
    from enliven.errors import InputError

    if not (args.window or args.serve or args.virtual_camera is not None or args.stream or args.record):
        raise InputError(f"enliven live needs at least one output: {OUTPUT_FLAGS}.")
    if args.serve and args.camera is not None:
        raise InputError(
            "--serve takes its camera from the browser; leave out --camera, or drop --serve to use a local camera."
        )
    if not 0.05 <= args.pip_scale <= 1:
        raise InputError(f"--pip-scale must be between 0.05 and 1, got {args.pip_scale}.")
    if args.loop and args.record and args.seconds is None and not (args.window or args.serve):
        raise InputError("--loop with --record alone would record forever; add --seconds N (or Ctrl-C to stop).")


def run(args: argparse.Namespace) -> int:
    from enliven.live import Camera, LiveSession, LiveSettings, LiveStats, run_live
    from enliven.live.overlay import stamp_index

    _check_arguments(args)
    stop = threading.Event()
    camera = None
    if not args.serve:  # before the model loads: a missing file or device is one sentence, at once
        camera = Camera.open("0" if args.camera is None else args.camera, loop=args.loop,
                             transform=stamp_index if args.bench else None)  # fmt: skip
    if args.virtual_camera is not None:
        from enliven.live.outputs import VirtualCameraOutput

        VirtualCameraOutput.check_available(args.virtual_camera or None)
    fps = camera.nominal_fps if camera is not None else 30.0
    settings = LiveSettings(
        overlay=args.overlay,
        corner=args.corner,
        pip_scale=args.pip_scale,
        paste_back=args.paste_back,
        mode="absolute" if args.absolute else "relative",
        show_stats=not args.no_stats,
        stamp=args.bench,
        edit=args.edit,
    )
    session = LiveSession.load(
        args.source if len(args.source) > 1 else args.source[0],
        model=args.model,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
        size=args.size,
        adapt_scale=args.adapt_scale,
        fps=fps,
        settings=settings,
    )
    if session.model_choice is not None:
        print(f"enliven: {session.model_choice.line}", flush=True)
    with session:
        outputs = _outputs(args, session, camera, fps, stop)
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C ends the run; files are finished
        try:
            if args.serve:
                report = _serve(args, session, outputs, stop)
            else:
                assert camera is not None
                stats = LiveStats(camera)
                outputs = [_window(args, session, stats, stop), *outputs] if args.window else outputs
                with camera:
                    report = run_live(
                        session, camera, outputs, stop=stop, seconds=args.seconds, stats=stats,
                        on_frame=None if args.quiet else _progress_printer(),
                    )  # fmt: skip
        finally:
            signal.signal(signal.SIGINT, previous)
    lines = report.lines() if args.bench else report.lines()[:1]
    for line in lines:
        print(line)
    for output in outputs:
        if getattr(output, "path", None) is not None:
            written = output.frames_written
            print(f"recorded {output.path}" if written else f"nothing was shown: {output.path} was not written")
    return 0


def _window(args, session, stats, stop):
    from enliven.live.window import WindowOutput

    return WindowOutput(session, stats, stop)


def _outputs(args: argparse.Namespace, session, camera, fps: float, stop: threading.Event) -> list:
    from enliven.live.outputs import RecordOutput, StreamOutput, VirtualCameraOutput

    outputs: list = []
    if args.virtual_camera is not None:
        outputs.append(VirtualCameraOutput(fps, args.virtual_camera or None))
    if args.stream:
        outputs.append(StreamOutput(args.stream, fps))
    if args.record:
        audio = camera.audio if camera is not None else None
        inputs = [*args.source, *([camera.name] if camera is not None else [])]
        outputs.append(RecordOutput(args.record, fps, audio_from=audio, inputs=inputs))
    return outputs


def _serve(args: argparse.Namespace, session, outputs: list, stop: threading.Event):
    from enliven.live.web import LiveWebServer

    server = LiveWebServer(session, host=args.host, port=args.port, outputs=outputs, stop=stop)
    if args.window:  # the page's frames in a local window too (e.g. for OBS's window capture)
        server.add_output(_window(args, session, server.stats, stop))
    with server:
        print(f"enliven live: open {server.url} (the avatar alone for OBS: {server.url}avatar); Ctrl-C stops.")
        sys.stdout.flush()
        return server.serve_forever(seconds=args.seconds)


def _progress_printer(every: float = 10.0):
    """A line on stderr every ``every`` seconds: fps and latency (long runs show they are alive)."""
    last = time.perf_counter()

    def report(frame, stats) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every:
            last = now
            lost = "" if frame.face_found else ", face lost"
            print(f"live: {stats.fps:.1f} fps, {stats.latency_ms:.0f} ms{lost}", file=sys.stderr)

    return report
