"""``FaceWorker``: MediaPipe's share of :func:`~enliven.inference.animate.animate_file` in a process of its own.

On a 2-core CPU, ``enliven animate`` spent its first 1.3 s importing torch, then 0.5 s importing MediaPipe and
building its graphs, then found the faces in the whole driving clip before the first frame, and every frame the
face mesh ran beside the model in the same process. The worker moves all of it into a second process that never
imports torch, started before the main process imports torch:

1. it finds the source's face (:meth:`FaceWorker.source_has_face`, which ``--model auto`` asks first), then the
   driving clip's crop boxes (:meth:`FaceWorker.plan`), while the main process imports torch and loads the model;
2. asked with the model's size (:meth:`FaceWorker.landmarks`), it cuts the source and every driving frame and
   streams their face-mesh landmarks (``468 x 2`` floats per frame, in the models' ``[-1, 1]`` convention): a
   face-mesh model (enliven-lite) then renders from landmarks alone, and the main process never decodes the clip.

Models with a detector of their own (FOMM, TPSMM) take the boxes only. The worker's results are the ones the same
code gives in-process (:class:`~enliven.inference.cropper.FaceCropper`,
:class:`~enliven.inference.landmarks.FaceMeshTracker`).

Protocol: pickled tuples over the worker's stdin and stdout (the worker's own prints go to its stderr). Errors
found in the worker (no face, an unreadable clip) are raised in the main process with the same sentence.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from enliven.errors import EnlivenError, FaceTooSmallError, InputError, NoFaceError

if TYPE_CHECKING:  # the main process starts the worker before anything heavy is imported
    import numpy as np

    from enliven.preprocess import Box

_ERRORS: dict[str, type[EnlivenError]] = {
    "NoFaceError": NoFaceError,
    "FaceTooSmallError": FaceTooSmallError,
    "InputError": InputError,
}


@dataclass(frozen=True)
class FaceJob:
    """What the worker is asked.

    Attributes:
        source: the source image (or video: its first frame).
        driving: the driving clip.
        smooth_track: crop the clip along a smoothed face track instead of one stable box.
        memory_budget_mb: decoded driving frames kept in memory for the face search, at most this many MiB.
        any_face: take a source face of any size (``--force``; see
            :func:`~enliven.inference.cropper.check_usable_face`).
    """

    source: str
    driving: str
    smooth_track: bool = False
    memory_budget_mb: int = 1024
    any_face: bool = False


@dataclass(frozen=True)
class FacePlan:
    """Where the faces are: the source's crop box and the driving clip's (one stable box, or one per frame)."""

    source_box: Box
    boxes: list[Box]


def worker_applies(source: object, driving: object, *, crop: bool, find_best_frame: bool) -> bool:
    """Whether a worker can serve these inputs: both are files (arrays stay in the caller's process), faces are
    cropped, and no best reference frame is searched (that needs every frame's landmarks beside the source's)."""
    return isinstance(source, (str, Path)) and isinstance(driving, (str, Path)) and crop and not find_best_frame


class FaceWorker:
    """A running worker process (see the module docstring); use :meth:`start`, and :meth:`close` when done."""

    def __init__(self, process: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self._process = process
        self._errors = errors
        self._plan: FacePlan | None = None
        self._source_face: tuple[float, ...] | None = None  # (share of the shorter side,) once found
        self._source_error: EnlivenError | None = None  # why the source has no face a face model can animate

    @classmethod
    def start(
        cls,
        source: str | Path,
        driving: str | Path,
        *,
        smooth_track: bool = False,
        memory_budget_mb: int = 1024,
        any_face: bool = False,
    ) -> FaceWorker:
        """Start a worker on a source image and a driving clip; it begins finding faces at once."""
        job = FaceJob(str(source), str(driving), smooth_track, memory_budget_mb, any_face)
        errors = tempfile.TemporaryFile()  # its stderr: read only to explain a crash, so it never fills a pipe
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the same enliven as ours
        process = subprocess.Popen(
            [sys.executable, "-m", "enliven.inference.face_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        worker = cls(process, errors)
        worker._send(("job", job))
        return worker

    def source_has_face(self) -> bool:
        """Whether the source shows a face a face model can animate (waits for the source's face search only, not
        the clip's). After ``False``, :meth:`plan` raises why.

        Raises:
            InputError: an input could not be read.
        """
        if self._source_face is None and self._source_error is None:
            try:
                _, share = self._receive("face")
                self._source_face = (float(share),)
            except (NoFaceError, FaceTooSmallError) as error:
                self._source_error = error
        return self._source_face is not None

    @property
    def source_face_share(self) -> float | None:
        """The source face's side as a share of the photo's shorter side (after :meth:`source_has_face`)."""
        return self._source_face[0] if self._source_face is not None else None

    def plan(self) -> FacePlan:
        """The face boxes (waits for the face search).

        Raises:
            NoFaceError: no face in the source or in the clip. InputError: an input could not be read.
        """
        if self._plan is None:
            if not self.source_has_face():
                raise self._source_error  # type: ignore[misc]
            _, source_box, boxes = self._receive("plan")
            self._plan = FacePlan(source_box, boxes)
        return self._plan

    def landmarks(self, size: int) -> tuple[np.ndarray, Iterator[np.ndarray]]:
        """The source's landmarks (``1 x 468 x 2``) and a stream of each driving frame's (``468 x 2``, NaN before the
        clip's first face), found on crops of ``size x size`` pixels. The stream ends with the clip and closes the
        worker; stopping early: :meth:`close`.

        Raises:
            NoFaceError: no face landmarks in the source.
        """
        self.plan()
        self._send(("landmarks", int(size)))
        _, source = self._receive("source")
        return source, self._stream()

    def _stream(self) -> Iterator[np.ndarray]:
        try:
            while True:
                message = self._receive("points", "done")
                if message[0] == "done":
                    return
                yield message[1]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker (at once, whatever it was doing)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._errors):
            if stream is not None:
                stream.close()

    def __enter__(self) -> FaceWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._process.stdin is not None
        try:
            pickle.dump(message, self._process.stdin)
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):  # it ended: its message says why
            self._receive("never")

    def _receive(self, *kinds: str) -> tuple[Any, ...]:
        assert self._process.stdout is not None
        try:
            message = pickle.load(self._process.stdout)  # our own child: trusted
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            raise EnlivenError(f"the face worker stopped unexpectedly: {self._stderr_tail()}") from None
        if message[0] == "error":
            _, kind, text = message
            raise _ERRORS.get(kind, EnlivenError)(text)
        if message[0] not in kinds:
            raise EnlivenError(f"the face worker sent {message[0]!r} where {' or '.join(kinds)} was expected")
        return message

    def _stderr_tail(self) -> str:
        self._process.wait()
        try:
            self._errors.seek(0)
            tail = self._errors.read().decode(errors="replace").strip().splitlines()[-3:]
        except (OSError, ValueError):
            tail = []
        return " / ".join(tail) or f"exit status {self._process.returncode}"


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The worker's side: answer one job (see the module docstring)."""
    from enliven.inference.cropper import FaceCropper
    from enliven.inference.driving import DrivingClip, box_at, read_source
    from enliven.inference.landmarks import FaceMeshTracker

    def send(message: tuple[Any, ...]) -> None:
        pickle.dump(message, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()

    try:
        _, job = pickle.load(requests)
        clip = DrivingClip(job.driving, job.memory_budget_mb)
        source = read_source(Path(job.source))
        with FaceCropper(1, any_face=job.any_face) as finder:  # boxes do not depend on the crops' size
            source_box = finder.source_box(source, f"the source {job.source}")
            send(("face", finder.source_face_share))
            boxes = finder.clip_boxes(clip.first_pass(), smooth_track=job.smooth_track, what=clip.what)
            send(("plan", source_box, boxes))
            request = pickle.load(requests)
            if request[0] != "landmarks":
                return
            cutter = FaceCropper(request[1], detector=finder.detector)
            tracker = FaceMeshTracker()
            try:
                send(("source", tracker.source(cutter.cut(source, source_box))))
                for index, frame in enumerate(clip.frames()):
                    points = tracker.driving(cutter.cut(frame, box_at(boxes, index))[None])
                    send(("points", points[0]))
            finally:
                tracker.close()
        send(("done",))
    except EnlivenError as err:
        send(("error", type(err).__name__, str(err)))
    except (EOFError, BrokenPipeError):  # the main process stopped asking, or stopped listening
        pass


def main() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by a library goes to stderr, not into the replies
    with replies:
        _serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
