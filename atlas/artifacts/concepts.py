"""`stages/concepts/` (data with concept masks) and `stages/dissect/` (NetDissect IoU).

concepts: `masks.npy` int8 (N, kinds, t, t) concept ids per thumbnail pixel (-1: none),
`concepts.json` `{kinds, names: {kind: [name]}, concepts: ["kind:name"]}`.
dissect: `<layer>/iou.npy` float32 (C, K), `<layer>/thresholds.npy` float32 (C,),
`meta.json` `{concepts, quantile, mask_size, min_iou, layers: {layer: {...}}}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import load_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json

CONCEPTS, DISSECT = "concepts", "dissect"
MASKS, SPEC, META = "masks.npy", "concepts.json", "meta.json"


@dataclass
class Concepts:
    masks: np.ndarray   # (N, kinds, t, t) int8, memory-mapped
    spec: dict          # concepts.json

    @property
    def sizes(self) -> list[int]:
        """Number of concepts of each kind, in kind order."""
        return [len(self.spec["names"][kind]) for kind in self.spec["kinds"]]


def read_concepts(store: RunStore) -> Concepts:
    d = store.stage_dir(CONCEPTS)
    return Concepts(masks=load_array(d / MASKS, 4, "int"), spec=read_json(d / SPEC))


def write_concepts(out: Path, masks: np.ndarray, spec: dict) -> None:
    save_array(Path(out) / MASKS, masks, np.int8)
    write_json(Path(out) / SPEC, spec)


@dataclass
class Dissection:
    meta: dict
    dir: Path

    def iou(self, layer: str) -> np.ndarray:
        return load_array(self.dir / layer / "iou.npy", 2, "float", mmap=False)

    def layer_info(self, layer: str) -> dict:
        """What the evidence stage records about a dissected layer."""
        m = self.meta
        return {"concepts": m["concepts"], "quantile": m["quantile"], "min_iou": m.get("min_iou"),
                "mask_size": m["mask_size"], **m["layers"][layer]}


def read_dissect(store: RunStore) -> Dissection:
    d = store.stage_dir(DISSECT)
    return Dissection(meta=read_json(d / META), dir=d)


def write_dissect_layer(out: Path, layer: str, iou: np.ndarray, thresholds: np.ndarray) -> None:
    d = Path(out) / layer
    d.mkdir(parents=True, exist_ok=True)
    save_array(d / "iou.npy", iou, np.float32)
    save_array(d / "thresholds.npy", thresholds, np.float32)


def write_dissect_meta(out: Path, meta: dict) -> None:
    write_json(Path(out) / META, meta)
