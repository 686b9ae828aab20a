"""Top-image patches: each top image cropped to the receptive field of the unit's maximum.

Every patch of a layer has the same scale: the crop window is the layer's largest clipped
field (S x S input pixels). A box that padding clipped at the image border is placed on the
side away from that border and the rest is filled with gray, so a patch shows where the
image ended, as in the Deep Visualization Toolbox.

Patches are shown at the receptive field's own resolution: P is the field's side clipped to
64..224 px (AlexNet conv5: 163 px out of a 224-px input), so a patch of a large field is
the model's pixels one to one. The evidence stage stores no patch pixels at all: a patch is
the window (`window_origin`, `boxes.npy`) of the stored top image, cut by the browser (CSS)
and by `crop_patch` for figures; the two agree pixel for pixel.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # the renderer reads patches without torch
    from atlas.evidence.receptive_field import ReceptiveField

PAD_VALUE = 128
MIN_PATCH, MAX_PATCH = 64, 224


def patch_size(rf: "ReceptiveField", override: int | None = None) -> int:
    """P: the configured size, else the layer's field clipped to [64, 224] pixels."""
    if override:
        return int(override)
    return int(np.clip(max(rf.size), MIN_PATCH, MAX_PATCH))


def _place(lo: int, hi: int, side: int, length: int) -> int:
    """Offset of the box [lo, hi) inside a window of `side` (the image axis has `length`)."""
    pad = side - (hi - lo)
    if pad <= 0:
        return 0
    if lo == 0 and hi < length:   # clipped at the start: the missing part lies before
        return pad
    if hi == length and lo > 0:   # clipped at the end
        return 0
    return pad // 2


def window_origin(box, window: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(wy0, wx0, sy, sx): the patch window's top-left corner in input pixels (negative where
    it starts beyond the image) and its size, for a box (y0, x0, y1, x1) in an image of `shape`."""
    y0, x0, y1, x1 = (int(v) for v in box)
    h, w = int(shape[0]), int(shape[1])
    sy, sx = max(int(window[0]), y1 - y0), max(int(window[1]), x1 - x0)
    return y0 - _place(y0, y1, sy, h), x0 - _place(x0, x1, sx, w), sy, sx


def crop_patch(image: np.ndarray, box: tuple[int, int, int, int], window: tuple[int, int], size: int) -> np.ndarray:
    """image (H, W, 3) uint8, box (y0, x0, y1, x1) half-open -> patch (size, size, 3) uint8."""
    y0, x0, y1, x1 = (int(v) for v in box)
    h, w = image.shape[:2]
    wy, wx, sy, sx = window_origin(box, window, (h, w))
    canvas = np.full((sy, sx, 3), PAD_VALUE, dtype=np.uint8)
    oy, ox = y0 - wy, x0 - wx
    canvas[oy:oy + y1 - y0, ox:ox + x1 - x0] = image[y0:y1, x0:x1]
    if (sy, sx) == (size, size):
        return canvas
    resample = Image.NEAREST if size >= max(sy, sx) else Image.BOX
    return np.asarray(Image.fromarray(canvas).resize((size, size), resample))
