"""Stage `dataset`: decide which images are usable, give them ids, keep display thumbnails."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from atlas.data.loader import display_transform
from atlas.data.sources import DataError, terminal_text
from atlas.stages.base import Stage
from atlas.stages.store import fault_point, write_json

VERSION = 1


def thumb_size(ctx) -> int:
    return min(ctx.spec.input_size, 64)


def make(ctx) -> Stage:
    cfg = ctx.cfg
    src = ctx.raw_source
    params = {"source": src.name, "fingerprint": src.fingerprint(), "count": len(src),
              "thumb": thumb_size(ctx), "input_size": ctx.spec.input_size, "resize": ctx.spec.resize,
              "limit": cfg.data_limit}
    return Stage("dataset", VERSION, params, run)


def run(ctx, out: Path, key: str) -> dict:
    src = ctx.raw_source
    size = thumb_size(ctx)
    to_display = display_transform(ctx.spec)

    def work(i: int):
        try:
            img = src.load(i)
        except DataError as exc:
            return None, str(exc)
        arr = to_display(img).permute(1, 2, 0).numpy()
        if arr.shape[0] != size:
            arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
        return arr, None

    thumbs = np.lib.format.open_memmap(out / "thumbs_all.npy", mode="w+", dtype=np.uint8,
                                       shape=(len(src), size, size, 3))
    usable, skipped = [], list(src.skipped)
    with ThreadPoolExecutor(max_workers=max(1, ctx.cfg.workers)) as pool:
        for i, (arr, reason) in enumerate(tqdm(pool.map(work, range(len(src))), total=len(src),
                                               desc="checking images", unit="img")):
            fault_point("dataset:image")
            if reason is None:
                thumbs[len(usable)] = arr
                usable.append(i)
            else:
                skipped.append({"path": src.descriptions[i], "reason": reason})
    if not usable:
        first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
        raise DataError(f"no usable image in {ctx.cfg.data} ({len(skipped)} skipped{first})")
    kept = np.array(thumbs[:len(usable)])
    del thumbs
    (out / "thumbs_all.npy").unlink()
    np.save(out / "thumbs.npy", kept)
    items = [{"id": n, "label": src.labels[i], "desc": src.descriptions[i]} for n, i in enumerate(usable)]
    write_json(out / "images.json", {"name": src.name, "fingerprint": src.fingerprint(),
                                     "class_names": list(src.class_names), "count": len(usable),
                                     "source_index": usable, "items": items})
    write_json(out / "skipped.json", skipped)
    if skipped:  # the list itself is printed with the run's summary, resumed or not
        print(f"[dataset] {len(skipped)} unusable files skipped; {len(usable)} images kept")
    return {"images": len(usable), "skipped": len(skipped)}


def print_skipped(skipped: list[dict], limit: int = 20) -> None:
    """The skipped-files report as the run prints it (names made terminal-safe)."""
    if not skipped:
        return
    print(f"skipped {len(skipped)} unusable file{'s' if len(skipped) != 1 else ''}:")
    for s in skipped[:limit]:
        print(f"  {terminal_text(s['path'])}: {terminal_text(s['reason'])}")
    if len(skipped) > limit:
        print(f"  ... and {len(skipped) - limit} more (see stages/dataset/skipped.json)")
