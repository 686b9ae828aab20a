"""`stages/featvis/<layer>/` (one stage per layer): each unit's synthesized images.

`<prior>.npy` uint8 (U, S, H, W, 3) for every prior `meta.json` lists (U units: the first
U of the layer, or the unit indices `meta.units` lists; S seeds), `<prior>_act.npy`
float32 (U, S) the unit's activation for each stored image, `meta.json`, and the pictures
the site shows, encoded once here: `strips/<group>/<unit>.png` (named by the layer's unit index),
per unit one lossless PNG strip
of the seeds of every prior whose tiles have the same size (a group; `meta.strips` lists
each group's priors and where their tiles start). The renderer hard-links these strips and
never encodes them. The prior names come from meta.json, so a new prior needs no change here.

Lossless PNG was chosen by measurement (notes/resolution.md): on feature-visualization
strips lossless WebP (Pillow) was 0-9% smaller but 4-150x slower to encode than this PNG
writer (atlas/evidence/png.py), and Pillow's PNG 4-8% smaller but 8-19x slower.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json
from atlas.evidence.png import ENCODER_VERSION, encode_png, strip

META = "meta.json"
STRIPS = "strips"


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

    @property
    def strips(self) -> list[dict]:
        """The encoded strip groups: [{name, parts: [[prior, first tile, tiles]], tiles, units}]."""
        return list(self.meta.get("strips") or [])

    def strip_path(self, group: str, unit: int) -> Path:
        """Unit `unit`'s strip of `group` (a unit of the layer that was visualized): a PNG of
        that group's tiles side by side."""
        return self.dir / STRIPS / group / f"{int(unit)}.png"

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
        try:
            return self.unit_ids.index(unit)
        except ValueError:
            return None


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
    if listed and not meta.get("strips"):
        raise ArtifactError(f"{d / META}: no encoded strips (a featvis stage from before atlas encoded them "
                            f"where they are made); run `atlas run` on this folder again to redo the featvis stages")
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


def strip_groups(shapes: dict[str, tuple[int, ...]]) -> list[dict]:
    """Priors (in order) grouped by tile size: a group's tiles share one strip per unit.
    `shapes`: prior -> its images' shape (U, S, H, W, 3)."""
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
    return groups


def write_strips(out: Path, priors: list[str], unit_ids: list[int] | None = None) -> tuple[list[dict], float]:
    """Encode every unit's strips from the priors' arrays already in `out` (see the module
    docstring); row i is unit `unit_ids[i]` (default: unit i). Returns the groups for
    meta.json and the seconds spent encoding."""
    out = Path(out)
    images = {p: np.load(out / f"{p}.npy", mmap_mode="r") for p in priors}
    groups = strip_groups({p: a.shape for p, a in images.items()})
    seconds = 0.0
    # deflate releases the GIL: threads encode a block's strips side by side (same bytes)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for g in groups:
            folder = out / STRIPS / g["name"]
            folder.mkdir(parents=True, exist_ok=True)
            arrays = [images[p] for p, _, _ in g["parts"]]
            for a in range(0, g["units"], 256):  # a block of units read at once from each array
                b = min(g["units"], a + 256)
                block = np.concatenate([np.asarray(arr[a:b]) for arr in arrays], axis=1)  # (units, tiles, H, W, 3)
                t0 = time.perf_counter()
                blobs = list(pool.map(lambda tiles: encode_png(strip(tiles)), block))
                seconds += time.perf_counter() - t0
                for row, blob in zip(range(a, b), blobs):
                    (folder / f"{unit_ids[row] if unit_ids is not None else row}.png").write_bytes(blob)
    return groups, seconds


def write_meta(out: Path, meta: dict) -> float:
    """meta.json, after encoding the strips of the priors it lists (their arrays must be
    written first); returns the seconds spent encoding, for the stage's summary."""
    listed = meta.get("units")
    groups, seconds = write_strips(out, list(meta.get("priors", [])),
                                   [int(u) for u in listed] if isinstance(listed, list) else None)
    write_json(Path(out) / META, {**meta, "strips": groups, "strips_encoder": f"png-{ENCODER_VERSION}"})
    return seconds
