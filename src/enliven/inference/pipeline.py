"""``animate_frames``: animate and write a stream of driving keypoints as a pipeline whose stages overlap on the CPU.

Three stages, each in its own thread: the next driving keypoints (a frame cropped and its keypoints found, by
MediaPipe's face mesh or the model's detector: :func:`frame_keypoints`; or landmarks read from the driving worker,
:class:`~enliven.inference.face_worker.FaceWorker`); render (the model); paste back and write. torch, MediaPipe,
OpenCV and the encoder's pipe release the GIL, so on a 2-core CPU a frame costs about its slowest stage instead of
their sum. Queues between the stages hold a few frames (:data:`PIPELINE_DEPTH`), so memory stays flat however long
the stream is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from enliven.errors import EnlivenError
from enliven.inference.animator import Animator
from enliven.io import open_writer
from enliven.io.writers import FrameWriter
from enliven.motion.edits import ExpressionEdit
from enliven.types import Keypoints


class Cancelled(EnlivenError):
    """The caller cancelled the work; nothing was written."""

    exit_code = 130


class CancelFlag(Protocol):
    """Anything with ``is_set()``, e.g. a :class:`threading.Event`."""

    def is_set(self) -> bool: ...


#: ``on_progress(frames_done, frames_total)``; the total is ``None`` when the clip's length is unknown.
ProgressCallback = Callable[[int, int | None], None]

#: Frames that may wait between two stages of the pipeline (a few: memory stays flat, stages never starve).
PIPELINE_DEPTH = 4
_DONE = object()
T = TypeVar("T")


def frame_keypoints(
    frames: Iterator[np.ndarray],
    crop: Callable[[int, np.ndarray], np.ndarray],
    animator: Animator,
    batch_size: int,
) -> Iterator[Keypoints]:
    """The driving keypoints of ``frames``, ``batch_size`` frames at a time, each frame cut by ``crop(index, frame)``
    (``size x size x 3`` uint8). Closing the iterator early closes ``frames`` (a decoder's ffmpeg process ends)."""
    try:
        crops = (crop(index, frame) for index, frame in enumerate(frames))
        for batch in _batched(crops, batch_size):
            yield animator.driving_keypoints(np.stack(batch))
    finally:
        _close(frames)


def batched_points(points: Iterator[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """``K x 2`` driving points grouped into ``B x K x 2`` batches of ``batch_size`` (the last may be smaller).
    Closing the iterator early closes ``points`` (e.g. :meth:`FaceWorker.landmarks`'s stream, which ends the worker)."""
    try:
        for batch in _batched(points, batch_size):
            yield np.stack(batch)
    finally:
        _close(points)


def edit_keypoints(points: Keypoints | np.ndarray, edit: ExpressionEdit, animator: Animator) -> np.ndarray:
    """``B x 468 x 2`` face-mesh driving keypoints with ``edit`` applied (:mod:`enliven.motion.edits`), against the
    animator's reference frame. The reference stays unedited, so that in relative mode the edit shows from the
    first frame: while the animator has none, the first row with a face becomes it."""
    array = points.value.detach().cpu().numpy() if isinstance(points, Keypoints) else np.asarray(points)
    found = ~np.isnan(array.reshape(len(array), -1)).any(axis=1)
    reference = animator.reference_keypoints
    if reference is None and found.any():
        reference = array[int(found.argmax())]
        animator.set_reference_keypoints(reference)
    return edit.apply(array, reference)


def edited_keypoints(
    keypoints: Iterator[Keypoints | np.ndarray], edit: ExpressionEdit, animator: Animator
) -> Iterator[np.ndarray]:
    """Batches of face-mesh driving keypoints with ``edit`` applied (:func:`edit_keypoints`). Closing the iterator
    early closes ``keypoints``."""
    try:
        for batch in keypoints:
            yield edit_keypoints(batch, edit, animator)
    finally:
        _close(keypoints)


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _close(items: object) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def animate_frames(
    keypoints: Iterator[Keypoints | np.ndarray],
    *,
    animator: Animator,
    finish: Callable[[np.ndarray], np.ndarray] | None,
    output: Path,
    fps: float,
    audio: Path | None,
    total: int | None,
    on_progress: ProgressCallback | None,
    cancel: CancelFlag | None,
    encoder_threads: int | None = None,
) -> int:
    """Animate and write every batch of driving keypoints (for :meth:`Animator.animate_keypoints`: ``B x K x 2``,
    e.g. from :func:`frame_keypoints` or :func:`batched_points`) as a three-stage pipeline: a thread takes the next
    keypoints from the iterator (the cropping and face mesh happen there), this thread renders, a third pastes back
    (``finish``) and writes. torch, MediaPipe, OpenCV and the encoder's pipe release the GIL, so on a 2-core CPU the
    stages overlap and a frame costs about its slowest stage, not their sum. Frames stay in order; an error in any
    stage stops the others and is raised here; ``on_progress`` is called from the writing thread. Stopping early
    closes the iterator. ``encoder_threads`` limits the video encoder's threads (``None``: ffmpeg's default).
    Returns the number of frames written."""
    found: queue.Queue = queue.Queue(PIPELINE_DEPTH)
    rendered: queue.Queue = queue.Queue(PIPELINE_DEPTH)
    stop = threading.Event()
    failures: list[BaseException] = []
    written = 0

    def put(target: queue.Queue, item: object) -> bool:
        while not stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def find_keypoints() -> None:
        try:
            for item in keypoints:
                if not put(found, item):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            failures.append(err)
            stop.set()
        finally:
            _close(keypoints)  # a decoder or worker stopped early ends at once
        put(found, _DONE)

    def write(writer: FrameWriter) -> None:
        nonlocal written
        try:
            while True:
                try:
                    item = rendered.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if item is _DONE:
                    return
                writer.write(finish(item) if finish is not None else item)
                written += 1
                if on_progress is not None:
                    on_progress(written, total)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            failures.append(err)
            stop.set()

    with open_writer(output, fps=fps, audio_from=audio, threads=encoder_threads) as writer:
        reader = threading.Thread(target=find_keypoints, name="enliven-keypoints", daemon=True)
        writer_thread = threading.Thread(target=write, args=(writer,), name="enliven-writer", daemon=True)
        reader.start()
        writer_thread.start()
        try:
            while not stop.is_set():  # set when another stage failed
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled; no output was written.")
                try:
                    item = found.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                for animated in animator.animate_keypoints(item):
                    put(rendered, animated)
            put(rendered, _DONE)  # the writer finishes what is queued, then stops
        except BaseException:
            stop.set()
            raise
        finally:
            writer_thread.join()
            stop.set()  # the keypoint thread stops at its next frame (it is done already after a full clip)
            reader.join()
        if failures:
            raise failures[0]
    return written
