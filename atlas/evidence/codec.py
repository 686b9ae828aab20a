"""Encoding evidence pictures once, where they are made: photographs lossy, synthesized lossless.

The evidence stage stores what the site shows as encoded files (top images, patch strips,
grid sprite sheets); the renderer hard-links or copies them and never encodes them again.
Photographs (top images, patches) are lossy: WebP or JPEG at `quality`. Feature
visualizations stay lossless PNG (users inspect their pixels).

The choice of encoder was measured (`benchmarks/codecs.py`, notes/resolution.md): on
224-px photos WebP (libwebp through Pillow, method 0) is about 25-30% smaller than JPEG at
the same quality setting and fast enough; JPEG goes through simplejpeg (libjpeg-turbo,
2-3x faster than Pillow's JPEG writer, same bytes class) when installed. Both are
deterministic: equal pixels give equal bytes, so a top image shared by layers is one file.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

FORMATS = ("webp", "jpeg")
SMALL = 96  # JPEGs of images with a side under this keep 4:4:4 colour
EXT = {"webp": "webp", "jpeg": "jpg"}

try:
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover (depends on the environment)
    _simplejpeg = None


def encoder_version(fmt: str, quality: int) -> str:
    """Changes when the bytes `encode` writes for the same pixels change."""
    backend = "simplejpeg" if fmt == "jpeg" and _simplejpeg is not None else "pillow"
    return f"{fmt}-q{quality}-{backend}-2"


def encode(pixels: np.ndarray, fmt: str = "webp", quality: int = 80) -> bytes:
    """uint8 (H, W, 3) RGB -> encoded bytes in `fmt` ('webp' or 'jpeg') at `quality` (1..100)."""
    a = np.ascontiguousarray(pixels)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"encode needs uint8 (H, W, 3) pixels, got {a.dtype} {a.shape}")
    if fmt == "jpeg":
        # small images (CIFAR, the world: 32 px) keep full colour resolution; 4:2:0 would halve
        # the colour of an image the model sees whole
        sub = "444" if min(a.shape[:2]) < SMALL else "420"
        if _simplejpeg is not None:
            return _simplejpeg.encode_jpeg(a, quality=int(quality), colorspace="RGB", colorsubsampling=sub)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=int(quality), subsampling=0 if sub == "444" else 2)
        return buf.getvalue()
    if fmt == "webp":
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "WEBP", quality=int(quality), method=0)
        return buf.getvalue()
    raise ValueError(f"unknown image format {fmt!r}; expected one of {FORMATS}")


def decode(data: bytes) -> np.ndarray:
    """Encoded bytes (any format Pillow reads) -> uint8 (H, W, 3)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def strip(tiles: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) tiles -> one (H, n*W, 3) image, tile j at x = j*W."""
    t = np.asarray(tiles)
    n, h, w = t.shape[:3]
    return t.transpose(1, 0, 2, 3).reshape(h, n * w, 3)


def sheet(tiles: np.ndarray, cols: int) -> np.ndarray:
    """(n, H, W, 3) tiles -> a (rows*H, cols*W, 3) sprite sheet, row-major, gray padding."""
    t = np.asarray(tiles)
    n, h, w = t.shape[:3]
    rows = max(1, -(-n // cols))
    padded = np.full((rows * cols, h, w, 3), 128, dtype=np.uint8)
    padded[:n] = t
    return padded.reshape(rows, cols, h, w, 3).swapaxes(1, 2).reshape(rows * h, cols * w, 3)


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3): area-averaged when shrinking, nearest when growing
    (a magnified receptive field shows its pixels, it is not smoothed)."""
    a = np.asarray(pixels)
    if a.shape[0] == size and a.shape[1] == size:
        return a
    resample = Image.BOX if size < max(a.shape[:2]) else Image.NEAREST
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((size, size), resample))
