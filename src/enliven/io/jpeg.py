"""Images in memory as JPEG bytes and back (the notebook's views and webcam, the server's one-frame API)."""

from __future__ import annotations

import cv2
import numpy as np


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """``H x W x 3`` uint8 RGB as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as JPEG")
    return data.tobytes()


def decode_image(data: bytes) -> np.ndarray | None:
    """Encoded image bytes (JPEG, PNG, WebP, BMP) as ``H x W x 3`` uint8 RGB; ``None`` when they are not one."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
