"""Stage `dataset`: list the images and give them ids, without decoding any.

The source lists its files cheaply (a folder walk, tar headers, a torchvision index); this
stage writes that list compactly (labels as an array, descriptions as one path table:
artifacts/dataset.py) together with what the listing could not use (unreadable folders,
links not followed). Image ids are positions in the list. A file that cannot be decoded is
found when the top-k pass first decodes it and is listed there with its reason
(`stages/topk/unusable.json`), in source order, whichever rank decoded it. Thumbnails are
made later, only for the images that get a page (stages/thumbs.py)."""
from __future__ import annotations

from pathlib import Path

from atlas.data.sources import DataError, terminal_text
from atlas.stages.base import Stage
from atlas.artifacts import dataset as artifact

VERSION = 2  # 2: a listing only (labels.npy + path table), no decode, no thumbnails


def thumb_size(ctx) -> int:
    """Side of the data-set thumbnails (and the concept masks' frame): at most 64 px."""
    return min(ctx.spec.input_size, 64)


def make(ctx) -> Stage:
    cfg = ctx.cfg
    src = ctx.raw_source
    params = {"source": src.name, "fingerprint": src.fingerprint(), "count": len(src), "limit": cfg.data_limit}
    return Stage("dataset", VERSION, params, run)


def run(ctx, out: Path, key: str) -> dict:
    src = ctx.raw_source
    if not len(src):
        first = f"; first: {src.skipped[0]['path']}: {src.skipped[0]['reason']}" if src.skipped else ""
        raise DataError(f"no image in {ctx.cfg.data}{first}")
    artifact.write(out, {"name": src.name, "fingerprint": src.fingerprint(), "class_names": list(src.class_names),
                         "count": len(src)}, list(src.skipped), src.labels, src.descriptions)
    if src.skipped:  # the list itself is printed with the run's summary, resumed or not
        print(f"[dataset] {len(src.skipped)} entries not listed; {len(src)} images listed")
    return {"images": len(src), "skipped": len(src.skipped)}


def print_skipped(skipped: list[dict], limit: int = 20) -> None:
    """The skipped-files report as the run prints it (names made terminal-safe)."""
    if not skipped:
        return
    print(f"skipped {len(skipped)} unusable file{'s' if len(skipped) != 1 else ''}:")
    for s in skipped[:limit]:
        print(f"  {terminal_text(s['path'])}: {terminal_text(s['reason'])}")
    if len(skipped) > limit:
        print(f"  ... and {len(skipped) - limit} more (see stages/dataset/skipped.json)")
