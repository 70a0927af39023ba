"""The evaluation report: ``results.json``, ``report.md`` with tables, PNG plots and sample strips.

Written into a folder that appears complete or not at all (:func:`enliven.io.atomic_output`)::

    DIR/results.json            every number (NaN as null), per method and per clip
    DIR/report.md               the summary table (model beside the baselines), per-clip table, plots, samples
    DIR/plots/summary.png       one bar chart per score
    DIR/plots/clips.png         the main score per clip and method
    DIR/samples/sample-NN.png   source | driving | each method's output, a few frames of one clip per file
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from enliven.errors import OutputError
from enliven.evaluate.results import SCORE_INFO, EvaluationResult, Protocol, SampleStrip, score_names
from enliven.io import atomic_output
from enliven.preprocess import resize_image

#: Side of each frame in the sample strips, in pixels.
SAMPLE_SIDE = 128
_LABEL_HEIGHT = 18
_COLORS = ("#3b6fb6", "#9a9a9a", "#d9822b", "#5a9e5a", "#a05aa0")


def write_report(result: EvaluationResult, directory: str | Path) -> Path:
    """Write the report folder (see the module docstring) and return its path.

    Raises:
        OutputError: the folder cannot be written.
    """
    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise OutputError(f"The report path {target} is a file; give a folder path for --report.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target, is_dir=True) as temp:
            (temp / "plots").mkdir()
            (temp / "samples").mkdir()
            (temp / "results.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
            _summary_plot(result, temp / "plots" / "summary.png")
            _clips_plot(result, temp / "plots" / "clips.png")
            sample_files = []
            for i, sample in enumerate(result.samples):
                name = f"samples/sample-{i:02d}.png"
                Image.fromarray(sample_image(sample)).save(temp / name)
                sample_files.append((sample.title, name))
            (temp / "report.md").write_text(markdown(result, sample_files), encoding="utf-8")
    except OSError as err:
        raise OutputError(
            f"Cannot write the report to {target} ({err.strerror or err}); choose another folder."
        ) from err
    return target


def format_score(value: float, name: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if name == "psnr":
        return f"{value:.2f}"
    if name == "akd":
        return f"{value:.3f}"
    return f"{value:.4f}"


def _summary_rows(result: EvaluationResult) -> list[str]:
    # joint angles exist for bodies only: the column is left out of faces' (and other content's) tables
    names = tuple(
        n for n in score_names(result.methods[0].summary)
        if n != "joints" or any(math.isfinite(getattr(m.summary, n)) for m in result.methods)
    )  # fmt: skip
    header = ["method", "kind", *(f"{SCORE_INFO[n][0]} {'↓' if SCORE_INFO[n][1] == 'lower' else '↑'}" for n in names)]
    rows = ["| " + " | ".join([*header, "frames/s"]) + " |", "|" + "---|" * (len(header) + 1)]
    for method in result.methods:
        cells = [format_score(getattr(method.summary, n), n) for n in names]
        rows.append(f"| {method.name} | {method.kind.value} | " + " | ".join(cells) + f" | {method.fps:.1f} |")
    return rows


def summary_table(result: EvaluationResult) -> str:
    """The summary as a Markdown table (methods as rows, scores and speed as columns)."""
    return "\n".join(_summary_rows(result))


def _main_score(result: EvaluationResult) -> str:
    """The score shown per clip: L1 (reconstruction); the identity distance (animation), or for bodies, where no
    method has a face to embed, the joints' correlation."""
    if result.protocol is Protocol.RECONSTRUCTION:
        return "l1"

    def measured(name: str) -> bool:
        return any(math.isfinite(getattr(m.summary, name)) for m in result.methods)

    return "joints" if measured("joints") and not measured("identity") else "identity"


def markdown(result: EvaluationResult, sample_files: list[tuple[str, str]]) -> str:
    """The text of ``report.md``."""
    opts = result.options
    frames = result.methods[0].frames if result.methods else 0
    lines = [
        f"# enliven eval: {result.model} on {Path(result.dataset).name}/{result.split} ({result.protocol.value})",
        "",
    ]
    if result.untrained:
        lines += ["> The model has random weights: its numbers show the pipeline works, not what a model can do.", ""]
    lines += [
        f"- dataset: `{result.dataset}`, split `{result.split}`, content `{result.content}`; {result.num_clips} clips, "
        f"{frames} driving frames (at most {opts.max_frames or 'all'} per clip), compared at {result.image_size} px"
        + (f"; {len(result.skipped)} skipped (see the end)" if result.skipped else ""),
        f"- protocol: {_protocol_text(result.protocol, opts.find_best_frame)}",
        f"- keypoints for AKD/MKR and motion: `{result.landmarks.value}`; identity embeddings: dlib "
        f"face_recognition_model_v1 on every {opts.identity_every}. frame",
        f"- model ran on `{result.device}`; frames/s counts the method alone (no reading, no metrics); "
        f"evaluation took {result.seconds:.0f} s",
        "",
        "## Summary",
        "",
        summary_table(result),
        "",
        "`static` is the source repeated (no model); `mesh warp` is a piecewise-affine warp along MediaPipe face-mesh "
        "landmarks (no learning).",
        "",
        "![summary](plots/summary.png)",
        "",
        "## Per clip",
        "",
    ]
    main = _main_score(result)
    lines.append("| clip | " + " | ".join(m.name for m in result.methods) + " |")
    lines.append("|" + "---|" * (len(result.methods) + 1))
    for i, clip in enumerate(result.methods[0].clips):
        title = (
            clip.source_clip if clip.source_clip == clip.driving_clip else f"{clip.source_clip} ← {clip.driving_clip}"
        )
        title += f" (from frame {clip.reference_frame})" if opts.find_best_frame else ""
        cells = [format_score(getattr(m.clips[i].scores, main), main) for m in result.methods]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", f"{SCORE_INFO[main][0]} per clip ({SCORE_INFO[main][1]} is better).", "", "![clips](plots/clips.png)"]
    if result.skipped:
        lines += ["", "## Skipped", "", "Left out of every method's scores:", ""]
        lines += [f"- {skipped.title}: {skipped.reason}" for skipped in result.skipped]
    if sample_files:
        columns = "Columns: source | driving | " + " | ".join(m.name for m in result.methods)
        if any(sample.mouths for sample in result.samples):
            columns += ", then the same images' mouths, enlarged"
        lines += ["", "## Samples", "", columns]
        for title, name in sample_files:
            lines += ["", f"**{title}**", "", f"![{title}]({name})"]
    return "\n".join(lines) + "\n"


def _protocol_text(protocol: Protocol, find_best_frame: bool = False) -> str:
    if protocol is Protocol.RECONSTRUCTION:
        return (
            "reconstruction (FOMM): source = first frame of each clip, driving = every frame, output compared with "
            "the real frames; the model uses absolute keypoints as the authors' reconstruction does"
        )
    reference = (
        "from the driving frame posed most like the source, --find-best-frame: each pair's is in the table"
        if find_best_frame
        else "from the driving clip's first frame"
    )
    return (
        "animation: the first frame of each clip driven by the next clip of another identity (relative motion "
        f"{reference}); identity distance to the source and correlation of motion signals with the driving frames"
    )


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    return Figure(figsize=(width, height), dpi=100)


def _summary_plot(result: EvaluationResult, path: Path) -> None:
    names = score_names(result.methods[0].summary)
    fig = _figure(2.4 * len(names), 3.0)
    labels = [m.name for m in result.methods]
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        values = [_finite(getattr(m.summary, name)) for m in result.methods]
        ax.bar(range(len(values)), values, color=_COLORS[: len(values)])
        ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
        label, better = SCORE_INFO[name]
        ax.set_title(f"{label} ({better} better)", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _clips_plot(result: EvaluationResult, path: Path) -> None:
    main = _main_score(result)
    clips = result.methods[0].clips
    fig = _figure(max(6.0, 0.45 * len(clips) * len(result.methods) + 2), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(result.methods)
    for m, method in enumerate(result.methods):
        values = [_finite(getattr(c.scores, main)) for c in method.clips]
        ax.bar(np.arange(len(values)) + m * width, values, width, label=method.name, color=_COLORS[m % len(_COLORS)])
    ax.set_xticks(
        np.arange(len(clips)) + 0.4 - width / 2, [c.source_clip for c in clips], rotation=35, ha="right", fontsize=7
    )
    ax.set_ylabel(f"{SCORE_INFO[main][0]} ({SCORE_INFO[main][1]} better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def sample_image(sample: SampleStrip, side: int = SAMPLE_SIDE) -> np.ndarray:
    """One row per drawn frame: source | driving | each method's output (then, when the strip has them, the same
    images' mouths enlarged), under a header naming the columns.

    Returns:
        ``H x W x 3`` uint8 image.
    """

    def thumb(image: np.ndarray) -> np.ndarray:
        return image if image.shape[:2] == (side, side) else resize_image(image, (side, side))

    titles = ["source", "driving", *(name for name, _ in sample.outputs)]
    titles += [f"{t}: mouth" for t in titles[: len(sample.mouths)]]
    rows = []
    for r in range(len(sample.frame_indices)):
        cells = [sample.source, sample.driving[r], *(frames[r] for _, frames in sample.outputs)]
        cells += [mouths[r] for mouths in sample.mouths]
        rows.append(np.concatenate([thumb(c) for c in cells], axis=1))
    grid = np.concatenate(rows, axis=0)
    header = Image.new("RGB", (grid.shape[1], _LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(header)
    for i, title in enumerate(titles):
        draw.text((i * side + 4, 3), title, fill="black")
    return np.concatenate([np.asarray(header), grid], axis=0)
