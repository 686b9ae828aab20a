"""`stages/thumbs/`: a thumbnail for every image that gets a page, and nothing else.

The paged images (`paged_ids`) are those in some unit's top-k, in the image map's sample or
a map neighbour of one; their number is bounded by units x k + `map_images` x (1 +
neighbours), whatever the size of the data set. The stage stores, encoded once:
- `ids.npy` int64 (P,): the paged image ids, ascending (slot j holds image `ids[j]`)
- `img/<id>.<ext>`: the image as the model sees it (resize, centre crop) at t x t px
- `sheets/data-<s>.<ext>`: sprite sheets of the thumbnails in slot order, SHEET_PER per
  sheet, SHEET_COLS columns (the maps' tiles)
- `meta.json`: `{size, format, quality, ext, count, sheet_per, sheet_cols, sheets}`
The renderer links these files into the site and never encodes them again; figures decode
the few they show."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, save_array
from atlas.artifacts.store import MANIFEST, RunStore, read_json, write_json
from atlas.evidence.codec import decode, encode, sheet

STAGE = "thumbs"
IDS, META = "ids.npy", "meta.json"
FORMAT, EXT = "jpeg", "jpg"   # photographs: lossy; one fixed format, so the site's names are fixed too
SHEET_COLS = 16
SHEET_PER = SHEET_COLS * SHEET_COLS


def paged_ids(topk_ids: list[np.ndarray], sample: np.ndarray | None = None,
              neighbors: np.ndarray | None = None) -> np.ndarray:
    """Ascending ids of the images that get a page and a thumbnail: those in some unit's
    top-k (`topk_ids`: one (C, k) array per layer), in the map sample, or a map neighbour of
    one (-1 entries ignored). Every other image is counted, not paged."""
    parts = [np.asarray(a, np.int64).ravel() for a in topk_ids]
    for extra in (sample, neighbors):
        if extra is not None:
            parts.append(np.asarray(extra, np.int64).ravel())
    ids = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return ids[ids >= 0]


@dataclass
class Thumbs:
    """The thumbs stage read back: which images have a thumbnail, where its file is."""
    dir: Path
    ids: np.ndarray                # (P,) ascending
    meta: dict
    manifest: Path | None = None   # where `sha` is read from, when first asked

    def __post_init__(self):
        self._pixels = lru_cache(maxsize=256)(self._decode)
        self._sha: dict | None = None if self.manifest is not None else {}

    @property
    def sha(self) -> dict[str, str]:
        """{file relative to the stage folder: sha256}, read from the manifest when first asked
        (the renderer's link keys): one entry per paged image, which the figures and the
        stages that only check the stage do not need to hold."""
        if self._sha is None:
            self._sha = file_sha(read_json(self.manifest))
        return self._sha

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def ext(self) -> str:
        return str(self.meta["ext"])

    def has(self, image_id: int) -> bool:
        j = int(np.searchsorted(self.ids, image_id))
        return j < len(self.ids) and int(self.ids[j]) == int(image_id)

    def rel(self, image_id: int) -> str:
        """The file of image `image_id`, relative to the stage folder (manifest key)."""
        return f"img/{int(image_id)}.{self.ext}"

    def path(self, image_id: int) -> Path:
        if not self.has(image_id):
            raise ArtifactError(f"{self.dir}: no thumbnail of image {int(image_id)} (not a paged image)")
        return self.dir / self.rel(image_id)

    def sheet_rels(self) -> list[str]:
        return [f"sheets/data-{s}.{self.ext}" for s in range(int(self.meta.get("sheets", 0)))]

    def _decode(self, image_id: int) -> np.ndarray:
        return decode(self.path(image_id).read_bytes())

    def pixels(self, image_id: int) -> np.ndarray:
        """uint8 (t, t, 3) of a paged image (decoded, cached)."""
        return self._pixels(int(image_id))

    __getitem__ = pixels  # thumbs[image_id], as the figures index them


def read(store: RunStore) -> Thumbs | None:
    """The finished thumbs stage, or None."""
    man = store.manifest(STAGE)
    if man is None:
        return None
    d = store.stage_dir(STAGE)
    meta = read_json(d / META)
    if not isinstance(meta, dict) or not {"size", "ext"} <= set(meta) or meta["ext"] != EXT:
        raise ArtifactError(f"{d / META}: expected {{size, ext: {EXT!r}, ...}}")
    ids = load_array(d / IDS, 1, "int", mmap=False).astype(np.int64)
    if ids.size and (np.diff(ids) <= 0).any():
        raise ArtifactError(f"{d / IDS}: image ids not ascending")
    del man
    return Thumbs(dir=d, ids=ids, meta=meta, manifest=d / MANIFEST)


def write_thumb(folder: Path, image_id: int, pixels: np.ndarray, quality: int) -> int:
    """`folder/img/<id>.<ext>`: one thumbnail encoded (the stage's chunks and its writer
    encode through here, so the bytes are the same whichever writes it); its bytes."""
    blob = encode(pixels, FORMAT, quality)
    (Path(folder) / "img").mkdir(parents=True, exist_ok=True)
    (Path(folder) / "img" / f"{int(image_id)}.{EXT}").write_bytes(blob)
    return len(blob)


class ThumbsWriter:
    """Writes the stage: thumbnails in ascending id order (`add` encodes one, `place` links
    one a chunk encoded with `write_thumb`), then `finish`."""

    def __init__(self, out: Path, size: int, quality: int = 85):
        self.out, self.size, self.fmt, self.quality, self.ext = Path(out), size, FORMAT, quality, EXT
        (self.out / "img").mkdir(parents=True, exist_ok=True)
        (self.out / "sheets").mkdir(exist_ok=True)
        self.ids: list[int] = []
        self.bytes = 0
        self._tiles: list[np.ndarray] = []

    def add(self, image_id: int, pixels: np.ndarray) -> None:
        """Thumbnail of image `image_id`: uint8 (size, size, 3); ids must ascend."""
        self._check(image_id, pixels)
        self.bytes += write_thumb(self.out, image_id, pixels, self.quality)
        self._keep(image_id, pixels)

    def place(self, image_id: int, chunk: Path, pixels: np.ndarray) -> None:
        """Thumbnail of image `image_id` that a chunk wrote (`chunk/img/<id>.<ext>`, by
        `write_thumb`), hard-linked here (copied where links are refused); `pixels` are the
        tile for the sprite sheets. Ids must ascend."""
        self._check(image_id, pixels)
        src, dst = Path(chunk) / self.rel(image_id), self.out / self.rel(image_id)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        self.bytes += dst.stat().st_size
        self._keep(image_id, pixels)

    def rel(self, image_id: int) -> str:
        return f"img/{int(image_id)}.{self.ext}"

    def _check(self, image_id: int, pixels: np.ndarray) -> None:
        if pixels.shape != (self.size, self.size, 3):
            raise ValueError(f"thumbnail of image {image_id}: shape {pixels.shape}, expected "
                             f"({self.size}, {self.size}, 3)")
        if self.ids and image_id <= self.ids[-1]:
            raise ValueError(f"thumbnail ids must ascend: {image_id} after {self.ids[-1]}")

    def _keep(self, image_id: int, pixels: np.ndarray) -> None:
        self.ids.append(int(image_id))
        self._tiles.append(np.asarray(pixels, np.uint8))
        if len(self._tiles) == SHEET_PER:  # memory: one sheet of tiles at a time
            self._flush()

    def _flush(self) -> None:
        if not self._tiles:
            return
        s = (len(self.ids) - 1) // SHEET_PER
        blob = encode(sheet(np.stack(self._tiles), SHEET_COLS), self.fmt, self.quality)
        (self.out / "sheets" / f"data-{s}.{self.ext}").write_bytes(blob)
        self.bytes += len(blob)
        self._tiles = []

    def finish(self, extra: dict | None = None) -> dict:
        self._flush()
        save_array(self.out / IDS, np.array(self.ids, np.int64))
        meta = {"size": self.size, "format": self.fmt, "quality": self.quality, "ext": self.ext,
                "count": len(self.ids), "sheet_per": SHEET_PER, "sheet_cols": SHEET_COLS,
                "sheets": -(-len(self.ids) // SHEET_PER), **(extra or {})}
        write_json(self.out / META, meta)
        return meta
