"""Stage `thumbs`: thumbnails of the images that get a page, and of no other image.

The paged images (artifacts/thumbs.paged_ids: every unit's top-k, the image map's sample
and its neighbours) are known once the top-k pass and the maps have run; their number is
bounded by units x k + `map_images` x (1 + neighbours), not by the data set. Each is
decoded once here, shown as the model sees it (resize, centre crop) at t = min(input
size, 64) px, and encoded once (JPEG, codec.encode) in chunks of consecutive paged images
shared by the ranks of a torchrun job (artifacts/chunks.py); rank 0 links the chunks'
files into the stage and encodes the maps' sprite sheets from their tiles. The renderer
links the files and never encodes them again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from atlas.artifacts import Run
from atlas.artifacts import thumbs as artifact
from atlas.artifacts.chunks import chunk_size, run_chunks
from atlas.data.loader import display_transform, make_loader
from atlas.evidence.codec import resize
from atlas.stages.base import Stage
from atlas.stages.dataset import thumb_size

VERSION = 1
QUALITY = 85
CHUNK_IMAGES = 1024  # the most paged images of one chunk (its tiles, t x t x 3 bytes each, are saved with it)


def make(ctx) -> Stage:
    deps = ("dataset", "topk", "maps") if ctx.cfg.maps else ("dataset", "topk")
    params = {**ctx.model_params(), "size": thumb_size(ctx), "format": artifact.FORMAT, "quality": QUALITY}
    return Stage(artifact.STAGE, VERSION, params, run, deps=deps, sharded=True)


def paged(run_in: Run) -> np.ndarray:
    """The run's paged image ids (artifacts.thumbs.paged_ids over its finished stages)."""
    maps = run_in.maps
    return artifact.paged_ids([run_in.topk.layer(e.name).ids for e in run_in.topk.layers],
                              None if maps is None else maps.ids, None if maps is None else maps.neighbors)


def run(ctx, out: Path, key: str) -> dict:
    ids = paged(Run(ctx.store.root))
    size = thumb_size(ctx)

    def compute(j0: int, j1: int, folder: Path) -> dict[str, np.ndarray]:
        """Paged images ids[j0:j1]: each encoded into `folder/img/`; their tiles returned."""
        tiles = np.zeros((j1 - j0, size, size, 3), np.uint8)
        loader = make_loader(ctx.source, display_transform(ctx.spec), ctx.cfg.batch_size, ctx.cfg.workers,
                             ids=ids[j0:j1])
        j = 0
        for x, batch_ids in loader:
            for i, px in zip(batch_ids.tolist(), x.permute(0, 2, 3, 1).numpy()):
                tiles[j] = px if px.shape[0] == size else resize(px, size)
                artifact.write_thumb(folder, i, tiles[j], QUALITY)
                j += 1
            bar.update(len(batch_ids))
        return {"tiles": tiles}

    with tqdm(total=len(ids), desc="thumbnails", unit="img", disable=ctx.rank != 0) as bar:
        done = run_chunks(ctx, artifact.STAGE, key, len(ids), chunk_size(len(ids), CHUNK_IMAGES), compute,
                          tag="images", items="images")
    if ctx.rank != 0:
        return {}
    writer = artifact.ThumbsWriter(out, size, QUALITY)
    for c in done:  # in id order; one chunk's tiles in memory at a time
        for i, tile in zip(ids[c.start:c.stop].tolist(), c.arrays()["tiles"]):
            writer.place(i, c.path, tile)
    meta = writer.finish()
    return {"images": meta["count"], "sheets": meta["sheets"], "bytes": writer.bytes}
