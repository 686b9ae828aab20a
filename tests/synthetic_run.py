"""A small run folder with the artifact contract's files: real shapes, random content.

Written through RunStore.writing, so manifests (sizes, sha256, shapes) are the real ones.
Used where the stages that would make an artifact are not needed to test what reads it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from atlas.evidence.codec import encode
from atlas.artifacts.pictures import write_layer
from atlas.priors import registry
from atlas.artifacts.store import RunStore, write_json

CLASSES = ["circle", "square", "triangle"]
LAYERS = [{"name": "features.conv5", "alias": "conv5", "kind": "conv", "shape": [6, 4, 4], "units": 6},
          {"name": "classifier.fc8", "alias": "fc8", "kind": "fc", "shape": [3], "units": 3}]


def _stage(store: RunStore, name: str, params: dict, files: dict, seconds: float = 0.1, extra=None) -> None:
    with store.writing(name, f"key-{name}", {"version": 1, "params": params, "deps": []}) as out:
        if extra is not None:
            extra(Path(out))
        for rel, value in files.items():
            path = Path(out) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, np.ndarray):
                np.save(path, value)
            else:
                write_json(path, value)
        write_json(Path(out) / "summary.json", {"seconds": seconds})


def add_featvis(store: RunStore, layer: dict, units: int, seeds: int, size: int, rng) -> None:
    files: dict = {}
    for prior in ("dgn", "pixel", "fourier"):
        files[f"{prior}.npy"] = rng.integers(0, 256, (units, seeds, size, size, 3), dtype=np.uint8)
        files[f"{prior}_act.npy"] = rng.normal(5, 2, (units, seeds)).astype(np.float32)
    files["meta.json"] = {"priors": ["dgn", "pixel", "fourier"], "seeds": seeds, "units": units,
                          "iterations": {"dgn": 5, "pixel": 5, "fourier": 5}, "crop": None,
                          "labels": registry.labels(["dgn", "pixel", "fourier"])}
    _stage(store, f"featvis/{layer['name']}", {"layer": layer["name"]}, files, seconds=2.5)


def add_evidence(store: RunStore, layer: dict, k: int, patch: int, n_images: int, rng,
                 ids: np.ndarray | None = None, thumbs: np.ndarray | None = None) -> None:
    """Evidence pictures as the evidence stage stores them: the top images' views (here the
    thumbnails, encoded once), boxes of `patch` px, heat grids and grid sheets."""
    c = layer["units"]
    labels = [{"unit": u, "label": f"shape:{CLASSES[u % len(CLASSES)]}" if u % 2 == 0 else None,
               "score": round(float(rng.uniform(0.05, 0.5)), 3), "method": "iou"} for u in range(c)]
    files = {"hist.npy": rng.integers(0, n_images, (c, 8)).astype(np.int64),
             "hist_edges.npy": np.tile(np.linspace(0, 1, 9, dtype=np.float32), (c, 1)),
             "stats.json": [{"unit": u, "mean": 0.1, "std": 0.2, "max": 1.0, "selectivity": 0.5,
                             "dead": False, "nonfinite": 0, "top_classes": [[CLASSES[0], 0.5]]}
                            for u in range(c)],
             "labels.json": labels}
    t = thumbs.shape[1]
    win = (patch, patch) if layer["kind"] == "conv" else (t, t)
    y0 = rng.integers(0, t - win[0] + 1, (c, k))
    x0 = rng.integers(0, t - win[1] + 1, (c, k))
    boxes = np.stack([y0, x0, y0 + win[0], x0 + win[1]], -1)
    heat = rng.integers(0, 256, (c, k, 4, 4), dtype=np.uint8)
    encoded = {}

    def view(i: int) -> bytes:
        if i not in encoded:
            encoded[i] = encode(thumbs[i], "jpeg", 90)
        return encoded[i]

    def extra(out: Path) -> None:
        meta = write_layer(out, ids, boxes, heat, view, t, t, win, 64)
        meta.pop("encode_s")
        write_json(out / "meta.json", {"layer": layer["name"], "k": k, **meta})
    _stage(store, f"evidence/{layer['name']}", {"layer": layer["name"]}, files, seconds=1.5, extra=extra)


def make_run(root: Path, n_images: int = 12, k: int = 4, seeds: int = 2, thumb: int = 16,
             featvis: tuple[str, ...] = ("features.conv5",), featvis_units: int = 4,
             evidence: tuple[str, ...] = ("features.conv5",), seed: int = 0) -> Path:
    """Write a run folder at `root`: config, dataset, topk, and the asked featvis/evidence."""
    rng = np.random.default_rng(seed)
    thumbs = rng.integers(0, 256, (n_images, thumb, thumb, 3), dtype=np.uint8)
    root = Path(root)
    store = RunStore(root)
    root.mkdir(parents=True, exist_ok=True)
    store.mark_format()
    write_json(root / "config.json", {"model": "worldnet", "data": "world", "seed": 0, "seeds": seeds,
                                      "world_seed": 2, "title": "synthetic run", "out": str(root)})
    items = [{"id": i, "label": i % len(CLASSES), "desc": f"world:2:{i}"} for i in range(n_images)]
    _stage(store, "dataset", {"source": "world"}, {
        "images.json": {"name": "world(seed=2)", "fingerprint": "f" * 64, "class_names": CLASSES,
                        "count": n_images, "source_index": list(range(n_images)), "items": items},
        "skipped.json": [],
        "thumbs.npy": thumbs})
    files: dict = {"layers.json": LAYERS}
    for layer in LAYERS:
        c = layer["units"]
        values = -np.sort(-rng.normal(size=(c, k)).astype(np.float32), axis=1)
        files[f"{layer['name']}/values.npy"] = values
        files[f"{layer['name']}/ids.npy"] = np.stack([rng.permutation(n_images)[:k] for _ in range(c)]).astype(np.int64)
        files[f"{layer['name']}/pos.npy"] = np.zeros((c, k, 2), dtype=np.int32)
    _stage(store, "topk", {"model": "worldnet", "weights": "sha256:" + "a" * 64, "k": k,
                           "layers": [layer["name"] for layer in LAYERS]}, files, seconds=4.0)
    by_name = {layer["name"]: layer for layer in LAYERS}
    for name in featvis:
        add_featvis(store, by_name[name], min(featvis_units, by_name[name]["units"]), seeds, thumb, rng)
    for name in evidence:
        add_evidence(store, by_name[name], k, 8, n_images, rng, files[f"{name}/ids.npy"], thumbs)
    return root


def manifest_of(root: Path, stage: str) -> dict:
    return json.loads((Path(root) / "stages" / stage / "manifest.json").read_text())
