"""Stage `concepts`: per-pixel concept id maps of every image, for NetDissect labels.

Only sources that draw their own masks (the embedded world) have it. Maps are brought into
the frame of the dataset thumbnails (the model's resize and centre crop, then the thumbnail
size, nearest neighbour), so they line up with what the model saw. Drawing them grows with
the images, so chunks of images are shared by the ranks of a torchrun job (artifacts/chunks.py).

`stages/concepts/`: `masks.npy` int8 (N, kinds, t, t), -1 where no concept of that kind;
`concepts.json`: `{kinds: [kind...], names: {kind: [name...]}, concepts: ['kind:name'...]}`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas.artifacts.chunks import chunk_size, run_chunks
from atlas.artifacts.concepts import write_concepts
from atlas.data import world
from atlas.stages.base import Stage
from atlas.stages.dataset import thumb_size

VERSION = 1
CHUNK_IMAGES = 4096  # the most images of one chunk (masks drawn by the ranks of a torchrun job in turn)
KINDS = {"shape": world.SHAPES, "color": world.COLORS, "texture": world.TEXTURES}


def available(ctx) -> bool:
    """True when the data source draws concept masks."""
    return callable(getattr(ctx.source, "masks", None))


def make(ctx) -> list[Stage]:
    """The concepts stage, for data that draws concept masks; none otherwise."""
    if not available(ctx):
        return []
    params = {"source": ctx.source.name, "thumb": thumb_size(ctx), "input_size": ctx.spec.input_size,
              "resize": ctx.spec.resize, "kinds": {k: list(v) for k, v in KINDS.items()}}
    return [Stage("concepts", VERSION, params, run, deps=("dataset",), sharded=True)]


def _nearest(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel under nearest-neighbour resizing (half-pixel centres)."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def to_model_frame(maps: np.ndarray, resize: int | None, input_size: int, thumb: int) -> np.ndarray:
    """(kinds, H, W) id maps -> (kinds, thumb, thumb): resize the shorter side to `resize` (or
    the input size), centre-crop the input size, then resize to the thumbnail; nearest neighbour."""
    h, w = maps.shape[-2:]
    side = resize or input_size
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    top, left = (size[0] - input_size) // 2, (size[1] - input_size) // 2
    rows = _nearest(h, size[0])[top:top + input_size][_nearest(input_size, thumb)]
    cols = _nearest(w, size[1])[left:left + input_size][_nearest(input_size, thumb)]
    return maps[:, rows[:, None], cols[None, :]].astype(np.int8)


def run(ctx, out: Path, key: str) -> dict:
    src, t = ctx.source, thumb_size(ctx)
    n = len(src)

    def compute(start: int, stop: int, _folder: Path) -> dict[str, np.ndarray]:
        masks = np.empty((stop - start, len(KINDS), t, t), dtype=np.int8)
        for i in range(start, stop):
            m = src.masks(i)
            masks[i - start] = to_model_frame(np.stack([m[k] for k in KINDS]), ctx.spec.resize, ctx.spec.input_size, t)
        return {"masks": masks}

    done = run_chunks(ctx, "concepts", key, n, chunk_size(n, CHUNK_IMAGES), compute, items="images")
    if ctx.rank != 0:
        return {}
    masks = np.concatenate([c.arrays()["masks"] for c in done])
    write_concepts(out, masks, {"kinds": list(KINDS), "names": {k: list(v) for k, v in KINDS.items()},
                                       "concepts": [f"{k}:{name}" for k, v in KINDS.items() for name in v]})
    return {"images": n, "concepts": sum(len(v) for v in KINDS.values())}
