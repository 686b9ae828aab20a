"""Read a run's artifacts into plain objects for the templates. Never imports torch."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas.render.names import safe_name
from atlas.stages.store import RunStore, read_json


@dataclass
class LayerData:
    name: str
    alias: str | None
    kind: str
    shape: list[int]
    units: int
    slug: str
    topk_values: np.ndarray   # (C, k)
    topk_ids: np.ndarray      # (C, k)
    topk_pos: np.ndarray      # (C, k, 2)
    maxact: np.ndarray        # (N, C) memory-mapped
    extras: dict = field(default_factory=dict)  # arrays and tables other stages add

    @property
    def title(self) -> str:
        return f"{self.alias} ({self.name})" if self.alias else self.name


@dataclass
class SiteData:
    run_dir: Path
    config: dict
    dataset: dict             # images.json
    skipped: list
    layers: list[LayerData]
    stages: dict              # name -> manifest
    thumbs: np.ndarray        # (N, t, t, 3)
    extras: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.config.get("title") or f"{self.config['model']} atlas"


def gather(run_dir: Path) -> SiteData:
    store = RunStore(run_dir)
    missing = [s for s in ("dataset", "topk") if store.manifest(s) is None]
    if missing:
        raise FileNotFoundError(f"{run_dir} has no finished {' and '.join(missing)} stage; run `atlas run` first")
    stages = {name: store.manifest(name) for name in store.completed()}
    ds_dir, top_dir = store.stage_dir("dataset"), store.stage_dir("topk")
    layers = []
    for info in read_json(top_dir / "layers.json"):
        d = top_dir / info["name"]
        layers.append(LayerData(
            name=info["name"], alias=info.get("alias"), kind=info["kind"], shape=info["shape"],
            units=info["units"], slug=safe_name(info["name"]),
            topk_values=np.load(d / "values.npy"), topk_ids=np.load(d / "ids.npy"),
            topk_pos=np.load(d / "pos.npy"), maxact=np.load(d / "maxact.npy", mmap_mode="r"),
            extras={"nonfinite": np.load(d / "nonfinite.npy")} if (d / "nonfinite.npy").is_file() else {}))
    return SiteData(run_dir=Path(run_dir), config=read_json(Path(run_dir) / "config.json"),
                    dataset=read_json(ds_dir / "images.json"), skipped=read_json(ds_dir / "skipped.json"),
                    layers=layers, stages=stages, thumbs=np.load(ds_dir / "thumbs.npy", mmap_mode="r"))
