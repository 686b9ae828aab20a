"""`stages/featvis/<layer>/` (one stage per layer): each unit's synthesized images.

`<prior>.npy` uint8 (U, S, H, W, 3) for every prior `meta.json` lists (U units: the first
U of the layer, or the unit indices `meta.units` lists; S seeds), `<prior>_act.npy`
float32 (U, S) the unit's activation for each stored image, `meta.json`. The prior names
come from meta.json, so a new prior needs no change here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json

META = "meta.json"


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


def write_meta(out: Path, meta: dict) -> None:
    write_json(Path(out) / META, meta)
