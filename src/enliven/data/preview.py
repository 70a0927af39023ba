"""Contact sheets of augmented training pairs, to check a dataset and an augmentation config by eye.

One row per pair: a caption (clip, identity, frame numbers) above the source and the driving frame side by side,
exactly as the training loader delivers them (same sampling, same augmentation, same seed handling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from enliven.data.config import AugmentationConfig
from enliven.data.layout import find_clips
from enliven.data.pairs import FramePair, PairDataset, PairDatasetConfig
from enliven.errors import OutputError
from enliven.io import atomic_output

_CAPTION_HEIGHT = 30
_GAP = 4
_BACKGROUND = 32
_TEXT_COLOUR = (235, 235, 235)
_SHEET_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class PreviewRequest:
    """What :func:`write_preview` draws.

    Attributes:
        dataset: the FOMM-layout dataset folder.
        output: the sheet to write (``.png`` or ``.jpg``).
        augmentation: the augmentation to show.
        pairs: number of rows.
        seed: picks the pairs and their augmentation (same seed, same sheet).
        split: which split to draw from.
        size: side of each frame on the sheet, in pixels (the loader's frame size).
    """

    dataset: Path
    output: Path
    augmentation: AugmentationConfig
    pairs: int = 8
    seed: int = 0
    split: str = "train"
    size: int = 256


def sample_pairs(dataset: PairDataset, count: int, seed: int) -> list[FramePair]:
    """``count`` items spread over the dataset (identities first when it samples identities), reproducibly."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return [dataset[int(i)] for i in order[:count]]


def render_sheet(pairs: list[FramePair], value_range: tuple[float, float]) -> np.ndarray:
    """Draw pairs as an ``H x W x 3`` RGB uint8 sheet (see the module docstring)."""
    height, width = pairs[0].source.shape[1:]
    row_height = _CAPTION_HEIGHT + height + _GAP
    sheet = np.full((len(pairs) * row_height + _GAP, 2 * width + 3 * _GAP, 3), _BACKGROUND, dtype=np.uint8)
    for row, pair in enumerate(pairs):
        top = row * row_height + _GAP
        caption = f"{pair.clip} [{pair.identity}]"
        _text(sheet, caption, (_GAP, top + 11), width * 2 + _GAP)
        labels = (f"source #{pair.source_index}", f"driving #{pair.driving_index}")
        for col, (image, label) in enumerate(zip((pair.source, pair.driving), labels, strict=True)):
            left = _GAP + col * (width + _GAP)
            sheet[top + _CAPTION_HEIGHT : top + _CAPTION_HEIGHT + height, left : left + width] = _to_uint8(
                image.numpy(), value_range
            )
            _text(sheet, label, (left, top + _CAPTION_HEIGHT - 4), width)
    return sheet


def write_preview(request: PreviewRequest) -> Path:
    """Sample pairs, augment them and write the contact sheet atomically (a temp file renamed into place).

    Returns:
        The written path.

    Raises:
        InputError: the dataset is missing or has no readable clip.
        OutputError: the output cannot be written or has an unsupported extension.
    """
    output = Path(request.output).expanduser()
    if output.suffix.lower() not in _SHEET_SUFFIXES:
        raise OutputError(f"Cannot write the sheet {output}: use a .png or .jpg file name.")
    if output.is_dir():
        raise OutputError(f"Cannot write the sheet {output}: a folder has that name; choose a file name.")
    clips = find_clips(request.dataset, request.split, seed=request.seed)
    identities = len({clip.identity for clip in clips})
    config = PairDatasetConfig(
        root=Path(request.dataset),
        split=request.split,
        frame_size=(request.size, request.size),
        id_sampling=True,
        num_repeats=-(-request.pairs // identities),  # enough items for every row
        augmentation=request.augmentation,
        seed=request.seed,
    )
    dataset = PairDataset(config, clips=clips)
    pairs = sample_pairs(dataset, request.pairs, request.seed)
    sheet = render_sheet(pairs, request.augmentation.value_range)
    ok, encoded = cv2.imencode(output.suffix.lower(), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"Cannot encode the sheet {output}; try a .png file name.")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(output) as temp:
            temp.write_bytes(encoded.tobytes())
    except OSError as err:
        raise OutputError(f"Cannot write the sheet {output} ({err.strerror or err}); choose a writable path.") from err
    return output


def _to_uint8(image: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """``3 x H x W`` float in ``value_range`` to ``H x W x 3`` uint8."""
    low, high = value_range
    unit = (image.transpose(1, 2, 0) - low) / (high - low)
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _text(sheet: np.ndarray, text: str, origin: tuple[int, int], max_width: int) -> None:
    """Draw ``text`` (non-ASCII shown as '?', OpenCV's fonts have no other glyphs), shortened to fit."""
    text = text.encode("ascii", "replace").decode("ascii")
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    while len(text) > 4 and cv2.getTextSize(text, font, scale, 1)[0][0] > max_width:
        text = text[: len(text) - 4] + "..."
    cv2.putText(sheet, text, origin, font, scale, _TEXT_COLOUR, 1, cv2.LINE_AA)
