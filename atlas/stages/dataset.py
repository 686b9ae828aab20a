"""Stage `dataset`: decide which images are usable, give them ids, keep display thumbnails.

The source lists its files without decoding them (a folder walk, tar headers). This stage
decodes each image once, in DataLoader workers, and writes its thumbnail straight into a
memory-mapped `thumbs.npy`; a file that cannot be decoded is skipped and listed with its
reason, in source order. Memory does not grow with the number of images beyond the lists
of ids, labels and names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from atlas.data.loader import die_with_parent, display_transform
from atlas.data.sources import DataError, terminal_text
from atlas.stages.base import Stage
from atlas.artifacts import dataset as artifact
from atlas.artifacts.store import fault_point

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


class ThumbDataset(Dataset):
    """(index, thumbnail uint8 (t, t, 3) or an empty array, reason or '') for every listed
    image: decoded in DataLoader workers, so decoding overlaps the writing here."""

    def __init__(self, src, to_display, size: int):
        self.src, self.to_display, self.size = src, to_display, size

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int):
        try:
            img = self.src.load(i)
        except DataError as exc:
            return i, np.zeros((0,), np.uint8), str(exc)
        arr = self.to_display(img).permute(1, 2, 0).numpy()
        if arr.shape[0] != self.size:
            arr = np.asarray(Image.fromarray(arr).resize((self.size, self.size), Image.BILINEAR))
        return i, arr, ""


def _as_list(batch):
    return batch


def run(ctx, out: Path, key: str) -> dict:
    src = ctx.raw_source
    size = thumb_size(ctx)
    n = len(src)
    # thumbnails go straight to a memory-mapped file as they are decoded (nothing of size
    # images x pixels in memory); unusable rows are squeezed out afterwards, in blocks
    thumbs = artifact.open_scratch_thumbs(out, n, size)
    usable, skipped = [], list(src.skipped)
    loader = DataLoader(ThumbDataset(src, display_transform(ctx.spec), size), batch_size=64, shuffle=False,
                        num_workers=ctx.cfg.workers, collate_fn=_as_list,
                        worker_init_fn=die_with_parent if ctx.cfg.workers > 0 else None,
                        prefetch_factor=4 if ctx.cfg.workers > 0 else None)
    with tqdm(total=n, desc="checking images", unit="img") as bar:
        for batch in loader:
            for i, arr, reason in batch:  # in source order, whatever the number of workers
                fault_point("dataset:image")
                if not reason:
                    thumbs[len(usable)] = arr
                    usable.append(i)
                else:
                    skipped.append({"path": src.descriptions[i], "reason": reason})
            bar.update(len(batch))
    if not usable:
        first = f"; first: {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
        raise DataError(f"no usable image in {ctx.cfg.data} ({len(skipped)} skipped{first})")
    items = [{"id": n_, "label": src.labels[i], "desc": src.descriptions[i]} for n_, i in enumerate(usable)]
    artifact.write(out, {"name": src.name, "fingerprint": src.fingerprint(), "class_names": list(src.class_names),
                         "count": len(usable), "source_index": usable, "items": items},
                   skipped, thumbs[:len(usable)])
    del thumbs
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
