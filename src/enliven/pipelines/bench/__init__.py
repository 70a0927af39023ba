"""``run_bench``: milliseconds per frame per stage, frames per second, GFLOP and peak memory, models side by side.

Every model sees the same frames: the source and the driving clip (the bundled assets by default), each cropped once
to a square face box at the benchmark size and decoded into memory before timing (decoding is not a model stage).
Frames are animated one at a time (batch 1, as in real-time use), in clip order (pose tracking follows them;
a clip shorter than the run is played forwards and backwards), with relative motion against the first frame.
Stages of each frame, timed with ``time.perf_counter``:

* pre-processing: uint8 frame -> model tensor (:meth:`Animator.to_tensor`); for face-mesh models also the frame
  as uint8 at model size, which the tracker is fed;
* driving keypoints: the model's detector or MediaPipe's face mesh (pose), and the motion transfer;
* dense motion: ``generate`` up to the end of the dense motion network (lite: landmark flows and mixing network);
  the ONNX backend runs dense motion and generator as one graph, so there it is counted in the generator;
* generator: the rest of ``generate``;
* post-processing: :meth:`Animator.to_uint8`.

Each stage's figure is its median over frames; the total is the median whole-frame time (so it may differ a little
from the stages' sum). Source encoding (:meth:`Animator.set_source`) is timed apart: it runs once per source. Each
model and backend runs in a fresh process, so peak resident memory figures do not mix.
"""

from enliven.pipelines.bench.results import (
    BACKENDS,
    DEFAULT_DRIVING,
    DEFAULT_MODELS,
    DEFAULT_SOURCE,
    TARGET_MS,
    BenchOptions,
    BenchReport,
    BenchResult,
    MachineInfo,
    StageTimes,
    machine_info,
)
from enliven.pipelines.bench.run import run_bench
from enliven.pipelines.bench.stages import BenchInputs, count_gflop, load_bench_model, prepare_inputs, time_stages

__all__ = [
    "BACKENDS",
    "DEFAULT_DRIVING",
    "DEFAULT_MODELS",
    "DEFAULT_SOURCE",
    "TARGET_MS",
    "BenchInputs",
    "BenchOptions",
    "BenchReport",
    "BenchResult",
    "MachineInfo",
    "StageTimes",
    "count_gflop",
    "load_bench_model",
    "machine_info",
    "prepare_inputs",
    "run_bench",
    "time_stages",
]
