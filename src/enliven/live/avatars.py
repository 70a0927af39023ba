"""Avatars: the photos a live session animates, read from files or a folder (unreadable ones skipped) or taken
from an upload, each kept at a bounded size with its face cut once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enliven.errors import InputError
from enliven.inference.cropper import Crop, FaceCropper
from enliven.preprocess import resize_image

logger = logging.getLogger(__name__)

#: Longest side an avatar photo is kept at: paste-back into a 24-megapixel photo each frame would cost more than the
#: model; outputs are camera-sized anyway.
MAX_AVATAR_SIDE = 1280


@dataclass(frozen=True, eq=False)
class Avatar:
    """A source photo ready to animate.

    Attributes:
        name: shown in menus (the file name).
        image: the photo, ``H x W x 3`` uint8 RGB (at most :data:`MAX_AVATAR_SIDE` on its longer side).
        crop: the model's square cut from it around the face.
    """

    name: str
    image: np.ndarray
    crop: Crop


def read_avatars(sources: str | Path | Sequence[str | Path]) -> tuple[list[np.ndarray], list[str]]:
    """Images and names from an image path, a list of them, or a folder (natural order); unreadable files are
    skipped with a warning.

    Raises:
        InputError: a path is missing, or no readable image is among ``sources``.
    """
    from enliven.io import IMAGE_SUFFIXES, natural_key, read_image

    paths = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(p) for p in sources]
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name)
            )
        elif path.exists():
            files.append(path)
        else:
            raise InputError(f"the source {path} does not exist; give an image or a folder of images.")
    images, names = [], []
    for file in files:
        try:
            images.append(read_image(file))
            names.append(file.name)
        except InputError as err:
            logger.warning("skipping %s: %s", file, err)
    if not images:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"no readable image was found in {where}; give a jpg, png or webp photo, or a folder of them.")
    return images, names


def make_avatar(image: np.ndarray, name: str, cropper: FaceCropper) -> Avatar:
    """An avatar from a photo (``H x W x 3`` uint8 RGB): kept at most :data:`MAX_AVATAR_SIDE` px on its longer side,
    its face cut by ``cropper`` (of the model's size).

    Raises:
        InputError: not an RGB uint8 image. NoFaceError: a face model and no face in the photo.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"{name} must be an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}.")
    longest = max(image.shape[:2])
    if longest > MAX_AVATAR_SIDE:
        scale = MAX_AVATAR_SIDE / longest
        image = resize_image(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    return Avatar(name, image, cropper.crop_source(image, f"the source {name}"))
