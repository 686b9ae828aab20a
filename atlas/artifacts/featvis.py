"""`stages/featvis/<layer>/` (one stage per layer): each unit's synthesized images.

`<prior>.npy` uint8 (U, S, H, W, 3) for every prior `meta.json` lists (U units: the first
U of the layer, or the unit indices `meta.units` lists; S seeds), `<prior>_act.npy`
float32 (U, S) the unit's activation for each stored image, `meta.json`, and the pictures
the site shows, encoded once here as lossless PNG sprite sheets: the priors whose tiles
have one size form a group (`fv0`, `fv1`, ...); a unit's strip of that group is its seeds
of every prior side by side (n tiles), and `sheets/<group>-<s>.png` holds the strips of
rows s*per .. s*per+per-1 of the arrays, `cols` strips across, row-major (`meta.sheets`
lists each group's priors, where their tiles start, `per` and `cols`; `sheet_place` says
where a row's tile lies). A sheet holds at most SHEET_UNITS strips and about SHEET_PIXELS
pixels, so a layer grid of thousands of units costs a few dozen requests and a browser
decodes a few megapixels per sheet. The renderer hard-links these sheets and never encodes
them. The prior names come from meta.json, so a new prior needs no change here.

Lossless PNG was chosen by measurement (notes/resolution.md): on feature-visualization
strips lossless WebP (Pillow) was 0-9% smaller but 4-150x slower to encode than this PNG
writer (atlas/evidence/png.py), and Pillow's PNG 4-8% smaller but 8-19x slower.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json
from atlas.evidence.png import ENCODER_VERSION, encode_png, sheet

META = "meta.json"
SHEETS = "sheets"
SHEET_UNITS = 256            # the most unit strips in one sheet
SHEET_PIXELS = 1 << 21       # about 2.1 megapixels a sheet (8 MB decoded): a unit page loads one sheet
PAD = (230, 234, 239)        # the slots after a layer's last unit (the site's empty-tile colour)


def stage(layer: str) -> str:
    return f"featvis/{layer}"


@dataclass
class Featvis:
    priors: list[str]
    seeds: int
    units: int                        # U, the rows every prior has
    unit_ids: list[int]               # the layer's unit index of each row
    images: dict[str, np.ndarray]     # prior -> (U, S, H, W, 3) uint8, memory-mapped
    acts: dict[str, np.ndarray]       # prior -> (U, S) float32 (NaN where not recorded)
    meta: dict
    sha: dict[str, str]
    dir: Path
    _rows: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def sheets(self) -> list[dict]:
        """The encoded sheet groups: [{name, tile, parts: [[prior, first tile, tiles]], tiles,
        units, per, cols, count}] (see the module docstring)."""
        return list(self.meta.get("sheets") or [])

    def sheet_rel(self, group: str, index: int) -> str:
        """Sheet `index` of `group`, relative to the stage folder (its key in the manifest)."""
        return f"{SHEETS}/{group}-{int(index)}.png"

    def sheet_path(self, group: str, index: int) -> Path:
        return self.dir / self.sheet_rel(group, index)

    def title(self, prior: str) -> str:
        """The prior's long title, as the featvis stage recorded it (its id for older runs)."""
        return ((self.meta.get("labels") or {}).get(prior) or {}).get("title", prior)

    def short(self, prior: str) -> str:
        return ((self.meta.get("labels") or {}).get(prior) or {}).get("short", prior)

    def column(self, prior: str) -> str:
        """The prior's column header in figures."""
        return ((self.meta.get("labels") or {}).get(prior) or {}).get("column", prior)

    def stored(self, prior: str, name: str) -> np.ndarray | None:
        """An extra array the prior stores (`meta.stores`), `<prior>_<name>.npy`, memory-mapped."""
        path = self.dir / f"{prior}_{name}.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    def row_of(self, unit: int) -> int | None:
        """The row of the arrays (and the sheets' slot) that holds `unit`; None when it was not visualized."""
        if not self._rows and self.unit_ids:
            self._rows.update((u, r) for r, u in enumerate(self.unit_ids))
        return self._rows.get(int(unit))


def read(store: RunStore, layer: str, layer_units: int) -> Featvis | None:
    """The layer's feature visualizations, None when the stage has not finished."""
    man = store.manifest(stage(layer))
    if man is None:
        return None
    d = store.stage_dir(stage(layer))
    meta = read_json(d / META) if (d / META).is_file() else {}
    listed = list(meta.get("priors", []))
    missing = [p for p in listed if not (d / f"{p}.npy").is_file()]
    if missing:
        raise ArtifactError(f"{d}/meta.json lists priors {missing} but their .npy files are missing")
    images, acts = {}, {}
    for p in listed:
        images[p] = load_array(d / f"{p}.npy", 5, "uint8")
        if images[p].shape[0] > layer_units:
            raise ArtifactError(f"{d / (p + '.npy')}: {images[p].shape[0]} units, layer has {layer_units}")
        act_path = d / f"{p}_act.npy"
        acts[p] = (load_array(act_path, 2, "float", images[p].shape[:2], mmap=False) if act_path.is_file()
                   else np.full(images[p].shape[:2], np.nan, np.float32))
    units = min((a.shape[0] for a in images.values()), default=0)
    if listed and not meta.get("sheets"):
        raise ArtifactError(f"{d / META}: no encoded sprite sheets (a featvis stage from before atlas encoded "
                            f"them as sheets where they are made); run `atlas run` on this folder again to redo "
                            f"the featvis stages")
    listed_units = meta.get("units")
    unit_ids = [int(u) for u in listed_units] if isinstance(listed_units, list) else list(range(units))
    if images and len(unit_ids) < units:
        raise ArtifactError(f"{d / META}: 'units' lists {len(unit_ids)} units but the images have {units}")
    return Featvis(priors=listed, seeds=min((a.shape[1] for a in images.values()), default=0), units=units,
                   unit_ids=unit_ids[:units], images=images, acts=acts, meta=meta, sha=file_sha(man), dir=d)


def write_prior(out: Path, prior: str, images: np.ndarray, acts: np.ndarray,
                stored: dict[str, np.ndarray] | None = None) -> None:
    """One prior's images (U, S, H, W, 3) uint8, activations (U, S) and the extra arrays it
    stores (`<prior>_<name>.npy`, leading dimensions (U, S))."""
    if images.ndim != 5 or images.dtype != np.uint8 or acts.shape != images.shape[:2]:
        raise ValueError(f"featvis {prior}: images {images.shape} {images.dtype}, acts {acts.shape} do not agree")
    save_array(Path(out) / f"{prior}.npy", images)
    for name, arr in (stored or {}).items():
        if arr.shape[:2] != images.shape[:2]:
            raise ValueError(f"featvis {prior}_{name}: shape {arr.shape} does not start with {images.shape[:2]}")
        save_array(Path(out) / f"{prior}_{name}.npy", arr)
    save_array(Path(out) / f"{prior}_act.npy", acts, np.float32)


def sheet_layout(tiles: int, h: int, w: int) -> tuple[int, int]:
    """(per, cols): how many unit strips of `tiles` tiles of h x w px one sheet holds (at
    most SHEET_UNITS and about SHEET_PIXELS pixels, at least one), and how many strips lie
    side by side in a sheet row, so a full sheet is about square."""
    per = max(1, min(SHEET_UNITS, SHEET_PIXELS // max(1, tiles * h * w)))
    cols = max(1, min(per, round(math.sqrt(per * h / max(1, tiles * w)))))
    return per, cols


def sheet_place(group: dict, row: int, tile: int = 0) -> tuple[int, int, int, int, int]:
    """Where tile `tile` of row `row`'s strip lies in `group`'s sheets: (sheet index, x, y,
    tiles across, tiles down), x and y counted in tiles; a layer's last sheet may be smaller."""
    per, cols, n, units = int(group["per"]), int(group["cols"]), int(group["tiles"]), int(group["units"])
    s, i = divmod(int(row), per)
    m = min(per, units - s * per)
    return s, (i % cols) * n + tile, i // cols, min(cols, m) * n, -(-m // cols)


def strip_groups(shapes: dict[str, tuple[int, ...]]) -> list[dict]:
    """Priors (in order) grouped by tile size: a group's tiles share one strip per unit in
    its sheets. `shapes`: prior -> its images' shape (U, S, H, W, 3)."""
    groups: list[dict] = []
    for prior, shape in shapes.items():
        tile = [int(shape[2]), int(shape[3])]
        group = next((g for g in groups if g["tile"] == tile), None)
        if group is None:
            group = {"name": f"fv{len(groups)}", "tile": tile, "parts": [], "tiles": 0, "units": int(shape[0])}
            groups.append(group)
        group["parts"].append([prior, group["tiles"], int(shape[1])])
        group["tiles"] += int(shape[1])
        group["units"] = min(group["units"], int(shape[0]))
    for group in groups:
        group["per"], group["cols"] = sheet_layout(group["tiles"], *group["tile"])
        group["count"] = -(-group["units"] // group["per"])
    return groups


def sheet_image(strips: np.ndarray, cols: int) -> np.ndarray:
    """(m, n, H, W, 3) unit strips -> one sheet: strip i at row i // cols, column i % cols
    (n tiles wide); a last row that is not full is padded with PAD."""
    m, n, h, w = strips.shape[:4]
    across = min(cols, m)
    rows = -(-m // across)
    cells = np.empty((rows * across, h, n * w, 3), np.uint8)
    cells[:m] = strips.transpose(0, 2, 1, 3, 4).reshape(m, h, n * w, 3)
    cells[m:] = PAD
    return sheet(cells, across)


def write_sheets(out: Path, priors: list[str]) -> tuple[list[dict], float]:
    """Encode every group's sheets from the priors' arrays already in `out` (see the module
    docstring); row i of the arrays is slot i of the sheets. Returns the groups for
    meta.json and the seconds spent encoding."""
    out = Path(out)
    images = {p: np.load(out / f"{p}.npy", mmap_mode="r") for p in priors}
    groups = strip_groups({p: a.shape for p, a in images.items()})
    (out / SHEETS).mkdir(parents=True, exist_ok=True)
    seconds = 0.0

    def encode(group: dict, s: int) -> bytes:
        a, b = s * group["per"], min(group["units"], (s + 1) * group["per"])
        block = np.concatenate([np.asarray(images[p][a:b]) for p, _, _ in group["parts"]], axis=1)  # (m, n, H, W, 3)
        return encode_png(sheet_image(block, group["cols"]))

    # deflate releases the GIL: threads encode sheets side by side (same bytes); a few at a
    # time, so at most a few sheets' pixels are in memory
    jobs = [(g, s) for g in groups for s in range(g["count"])]
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for a in range(0, len(jobs), workers):
            part = jobs[a:a + workers]
            t0 = time.perf_counter()
            blobs = list(pool.map(lambda job: encode(*job), part))
            seconds += time.perf_counter() - t0
            for (g, s), blob in zip(part, blobs):
                (out / SHEETS / f"{g['name']}-{s}.png").write_bytes(blob)
    return groups, seconds


def write_meta(out: Path, meta: dict) -> float:
    """meta.json, after encoding the sheets of the priors it lists (their arrays must be
    written first); returns the seconds spent encoding, for the stage's summary."""
    groups, seconds = write_sheets(out, list(meta.get("priors", [])))
    write_json(Path(out) / META, {**meta, "sheets": groups, "sheets_encoder": f"png-{ENCODER_VERSION}"})
    return seconds
