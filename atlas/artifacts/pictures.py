"""`stages/evidence/<layer>/` pictures (part of the artifact contract), read back without torch.

A layer's evidence folder holds each unique top image once (`views/<id>.<ext>`, the model's
view at the display size D), the receptive-field boxes in input pixels (`boxes.npy`), the
heatmaps as small grids (`heat.npy`) and grid sprite strips (`sheets/`). A top patch is
not stored: it is the patch window of the view at the box, scaled by D / input size, which
`patch` cuts here and the browser cuts with CSS (views.patch_style), the same window.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from atlas.evidence.codec import decode, encode, sheet, strip
from atlas.evidence.patches import crop_patch, window_origin


@dataclass(frozen=True)
class Geometry:
    """What the browser needs to cut a patch: the input size S, the display size D, the
    patch window (rows, cols) in input pixels and the patch's shown side P."""
    input_size: int
    display_size: int
    window: tuple[int, int]
    patch_size: int

    def window_of(self, box) -> tuple[int, int, int, int]:
        """(wy0, wx0, sy, sx) in input pixels."""
        return window_origin(box, self.window, (self.input_size, self.input_size))


class Pictures:
    """One layer's stored pictures: `view(id)`, `patch(unit, rank)`, `heat`, sheet paths."""

    def __init__(self, folder: Path, meta: dict):
        self.folder = Path(folder)
        self.meta = meta
        self.ext = meta["ext"]
        self.geometry = Geometry(int(meta["input_size"]), int(meta["display_size"]),
                                 tuple(int(v) for v in meta["patch_window"]), int(meta["patch_size"]))
        self.boxes = np.load(self.folder / "boxes.npy", mmap_mode="r")
        heat = self.folder / "heat.npy"
        self.heat = np.load(heat, mmap_mode="r") if heat.is_file() else None
        self._ids = np.load(self.folder.parents[1] / "topk" / self.folder.name / "ids.npy", mmap_mode="r") \
            if (self.folder.parents[1] / "topk" / self.folder.name / "ids.npy").is_file() else None
        self._view = lru_cache(maxsize=64)(self._decode)

    def view_path(self, image_id: int) -> Path:
        return self.folder / "views" / f"{int(image_id)}.{self.ext}"

    def _decode(self, image_id: int) -> np.ndarray:
        return decode(self.view_path(image_id).read_bytes())

    def view(self, image_id: int) -> np.ndarray:
        """The stored view (D, D, 3) of a top image."""
        return self._view(int(image_id))

    def sheet_paths(self, kind: str) -> list[Path]:
        """The sprite strips of `kind` ('top' or 'patch'), in unit order."""
        return sorted(self.folder.glob(f"sheets/{kind}-*.{self.ext}"), key=lambda p: int(p.stem.split("-")[1]))

    def patch(self, unit: int, rank: int, image_id: int | None = None, size: int | None = None) -> np.ndarray:
        """The top patch (size x size, default P): the window of the view at the box."""
        if image_id is None:
            image_id = int(self._ids[unit, rank])
        g = self.geometry
        img = self.view(image_id)
        scale = g.display_size / g.input_size
        box = np.round(np.asarray(self.boxes[unit, rank], dtype=np.float64) * scale).astype(int)
        window = tuple(max(1, int(round(w * scale))) for w in g.window)
        return crop_patch(img, box, window, size or g.patch_size)


class PatchArray:
    """`patches[unit, rank]` -> pixels, for code written against the old (C, k, P, P, 3) array."""

    def __init__(self, pictures: Pictures, units: int, k: int):
        self.pictures, self.shape = pictures, (units, k, pictures.geometry.patch_size, pictures.geometry.patch_size, 3)

    def __getitem__(self, index) -> np.ndarray:
        unit, rank = index
        return self.pictures.patch(int(unit), int(rank))


def load(folder: Path) -> Pictures | None:
    """The pictures of an evidence folder, or None when it holds none (an older run)."""
    from atlas.artifacts.store import read_json
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file() or not (folder / "views").is_dir():
        return None
    meta = read_json(meta_path)
    return Pictures(folder, meta) if "ext" in meta else None


def write_views(folder: Path, ids, pixels, fmt: str, quality: int, ext: str) -> int:
    """Encode each view once into folder/views/<id>.<ext>; returns the bytes written."""
    (folder / "views").mkdir(exist_ok=True)
    total = 0
    for i, px in zip(ids, pixels):
        blob = encode(px, fmt, quality)
        (folder / "views" / f"{int(i)}.{ext}").write_bytes(blob)
        total += len(blob)
    return total


def write_sheets(folder: Path, kind: str, tiles: np.ndarray, per: int, fmt: str, quality: int,
                 ext: str) -> tuple[int, float]:
    """Tiles (C, t, t, 3) -> folder/sheets/<kind>-<s>.<ext>, `per` units per strip.
    Returns (bytes written, seconds spent encoding)."""
    import time
    (folder / "sheets").mkdir(exist_ok=True)
    total, seconds = 0, 0.0
    for s, a in enumerate(range(0, len(tiles), per)):
        px = strip(tiles[a:a + per])
        t0 = time.perf_counter()
        blob = encode(px, fmt, quality)
        seconds += time.perf_counter() - t0
        (folder / "sheets" / f"{kind}-{s}.{ext}").write_bytes(blob)
        total += len(blob)
    return total, seconds


def write_layer(out: Path, ids: np.ndarray, boxes: np.ndarray, heat: np.ndarray | None, view_bytes,
                input_size: int, display_size: int, window: tuple[int, int], patch_size: int,
                fmt: str = "jpeg", quality: int = 80, sheet_thumb: int = 112, sheet_units: int = 256,
                heatmap: str = "activation") -> dict:
    """A whole evidence folder's pictures from already encoded views (`view_bytes(id) ->
    bytes`, each view encoded once by the caller): views/, boxes.npy, heat.npy, sheets/.
    Used by synthetic runs (tests, benchmarks); the evidence stage writes the same files
    while it streams the images. Returns the meta.json fields that describe them, and
    `encode_s`: the seconds spent encoding the sheets (the views' encoding is the caller's)."""
    from atlas.evidence.codec import EXT, resize
    out = Path(out)
    ext = EXT[fmt]
    (out / "views").mkdir(exist_ok=True)
    for i in np.unique(ids[ids >= 0]).tolist():
        (out / "views" / f"{i}.{ext}").write_bytes(view_bytes(i))
    np.save(out / "boxes.npy", boxes.astype(np.int32))
    if heat is not None:
        np.save(out / "heat.npy", heat.astype(np.uint8))
    whole = tuple(window) == (input_size, input_size)
    t = min(sheet_thumb, display_size)
    c = ids.shape[0]
    top = np.zeros((c, t, t, 3), np.uint8)
    patch = None if whole else np.zeros((c, t, t, 3), np.uint8)
    scale = display_size / input_size
    win = tuple(max(1, int(round(w * scale))) for w in window)
    last, img = None, None
    for u in np.argsort(ids[:, 0], kind="stable").tolist():  # each first top image decoded once
        if ids[u, 0] != last:
            last = ids[u, 0]
            img = decode(view_bytes(int(last)))
        top[u] = resize(img, t)
        if patch is not None:
            patch[u] = crop_patch(img, np.round(boxes[u, 0] * scale).astype(int), win, t)
    encode_s = write_sheets(out, "top", top, sheet_units, fmt, quality, ext)[1]
    if patch is not None:
        encode_s += write_sheets(out, "patch", patch, sheet_units, fmt, quality, ext)[1]
    return {"encode_s": encode_s, "input_size": input_size, "display_size": display_size, "patch_window": list(window),
            "patch_size": patch_size, "heat_grid": list(heat.shape[2:]) if heat is not None else None,
            "heatmap": heatmap if heat is not None else "none", "format": fmt, "quality": quality, "ext": ext,
            "patches": "view" if whole else "window", "sheet_units": sheet_units, "sheet_thumb": t,
            "sheets": ["top"] + ([] if whole else ["patch"])}


__all__ = ["Geometry", "Pictures", "PatchArray", "load", "write_views", "write_sheets", "write_layer", "sheet"]
