"""Time the generator of one model on several backends side by side, interleaved: one frame on each backend in
turn, repeated, so that a busy machine slows every backend alike. Prints the median milliseconds per frame and each
backend's ratio to the first.

    python scripts/bench_exported.py --model enliven-lite --backends onnx,tflite,tflite-fp16,tflite-int8 --threads 2

The driving frames are the bundled clip's (faces cropped and tracked as when animating, motion transferred to the
clip's first frame); the exported models come from the backends' caches (exported on first use).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from enliven.backends import get_backend
from enliven.export.calibration import calibration_samples
from enliven.weights import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="enliven-lite")
    parser.add_argument("--backends", default="onnx,tflite,tflite-fp16,tflite-int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.backends.split(",")
    reference = load_model(args.model)
    samples = list(calibration_samples(reference.model, None, 16))
    models = {name: get_backend(name).cached(reference, threads=args.threads).model for name in names}
    encodings = {name: model.encode_source(samples[0].source, samples[0].kp_source) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for round_index in range(args.rounds + 10):
            driving = samples[round_index % len(samples)].kp_driving
            for name, model in models.items():
                started = time.perf_counter()
                model.generate(encodings[name], driving)
                if round_index >= 10:  # warm-up
                    times[name].append((time.perf_counter() - started) * 1000)
    first = statistics.median(times[names[0]])
    print(f"{args.model}, generator per frame, {args.threads} threads, {args.rounds} interleaved rounds:")
    for name in names:
        median = statistics.median(times[name])
        print(f"  {name:12s} {median:6.1f} ms  ({median / first:.2f}x {names[0]})")


if __name__ == "__main__":
    main()
