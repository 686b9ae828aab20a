"""Stage `thumbs`: thumbnails of the images that get a page, and of no other image.

The paged images (artifacts/thumbs.paged_ids: every unit's top-k, the image map's sample
and its neighbours) are known once the top-k pass and the maps have run; their number is
bounded by units x k + `map_images` x (1 + neighbours), not by the data set. Each is
decoded once here (DataLoader workers), shown as the model sees it (resize, centre crop)
at t = min(input size, 64) px, and encoded once (JPEG, codec.encode) together with the
maps' sprite sheets; the renderer links the files and never encodes them again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from atlas.artifacts import Run
from atlas.artifacts import thumbs as artifact
from atlas.data.loader import display_transform, make_loader
from atlas.evidence.codec import resize
from atlas.stages.base import Stage
from atlas.stages.dataset import thumb_size

VERSION = 1
QUALITY = 85


def make(ctx) -> Stage:
    deps = ("dataset", "topk", "maps") if ctx.cfg.maps else ("dataset", "topk")
    params = {**ctx.model_params(), "size": thumb_size(ctx), "format": artifact.FORMAT, "quality": QUALITY}
    return Stage(artifact.STAGE, VERSION, params, run, deps=deps)


def paged(run_in: Run) -> np.ndarray:
    """The run's paged image ids (artifacts.thumbs.paged_ids over its finished stages)."""
    maps = run_in.maps
    return artifact.paged_ids([run_in.topk.layer(e.name).ids for e in run_in.topk.layers],
                              None if maps is None else maps.ids, None if maps is None else maps.neighbors)


def run(ctx, out: Path, key: str) -> dict:
    ids = paged(Run(ctx.store.root))
    size = thumb_size(ctx)
    writer = artifact.ThumbsWriter(out, size, QUALITY)
    loader = make_loader(ctx.source, display_transform(ctx.spec), ctx.cfg.batch_size, ctx.cfg.workers, ids=ids)
    with tqdm(total=len(ids), desc="thumbnails", unit="img") as bar:
        for x, batch_ids in loader:
            pixels = x.permute(0, 2, 3, 1).numpy()
            for i, px in zip(batch_ids.tolist(), pixels):
                writer.add(i, px if px.shape[0] == size else resize(px, size))
            bar.update(len(batch_ids))
    meta = writer.finish()
    return {"images": meta["count"], "sheets": meta["sheets"], "bytes": writer.bytes}
