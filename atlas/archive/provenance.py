"""Where a run came from: code, environment, model, data, config, seeds and timings.

Everything is read from the run folder's artifacts and the installed packages; the model
is never built and torch is never imported (its version comes from package metadata).
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from atlas import __version__
from atlas.artifacts import Run, RunStore
from atlas.artifacts.store import sha256_file

PACKAGES = ("torch", "torchvision", "numpy", "matplotlib", "jinja2", "pillow", "faiss-gpu",
            "faiss-cpu", "umap-learn", "openTSNE", "scikit-learn")


def atlas_info() -> dict:
    """atlas's version and, in a git checkout, its commit and whether files were modified."""
    pkg = Path(__file__).resolve().parents[1]
    info = {"version": __version__, "commit": "unknown", "modified": None}
    try:
        head = subprocess.run(["git", "-C", str(pkg), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode == 0:
            info["commit"] = head.stdout.strip()
            status = subprocess.run(["git", "-C", str(pkg), "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=30)
            if status.returncode == 0:
                info["modified"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "machine": platform.machine(), "packages": versions}


def model_info(store: RunStore) -> dict:
    """The model's name and weight identity as the top-k stage recorded them."""
    params = Run(store.root).topk.params
    keys = ("model", "weights", "input_size", "mean", "std", "resize", "layers", "k")
    return {k: params[k] for k in keys if k in params}


def data_folder(config: dict, dataset: dict) -> Path | None:
    """The image folder of a folder source, from images.json's name or the config's `data`."""
    name = dataset.get("name", "")
    candidates = []
    if name.startswith("folder(") and name.endswith(")"):
        candidates.append(Path(name[len("folder("):-1]))
    data = config.get("data")
    if isinstance(data, str) and data != "world" and not data.startswith("torchvision:"):
        candidates.append(Path(data))
    return next((c for c in candidates if c.is_dir()), None)


def dataset_info(run_dir: Path, config: dict, hash_files: bool = True) -> dict:
    """The data set's fingerprint and its files (with sha256 where they are on disk)."""
    images = Run(run_dir).dataset
    ds, skipped = images.info, images.skipped
    data = str(config.get("data", ""))
    info: dict = {"name": ds.get("name"), "fingerprint": ds.get("fingerprint"), "count": images.usable_count, "listed": images.count,
                  "class_names": ds.get("class_names"), "skipped": len(skipped), "config_data": data}
    if data == "world":
        info["kind"] = "procedural"
        info["note"] = ("images are drawn by atlas.data.world from (world_seed, index); the atlas "
                        "commit and the config fix them, so there are no files to hash")
        info["world"] = {"seed": config.get("world_seed"), "count": config.get("world_count")}
        return info
    if data.startswith("torchvision:"):
        info["kind"] = "torchvision"
        info["note"] = ("items are indices into the torchvision data set (see desc); the fingerprint "
                        "covers their order and labels, not the data set's own files")
        info["split"] = config.get("data_split")
        return info
    info["kind"] = "folder"
    root = data_folder(config, ds)
    info["root"] = str(root) if root else None
    files = []
    for i in np.flatnonzero(images.usable).tolist():
        desc = images.desc(i)
        entry = {"path": desc, "label": int(images.labels[i])}
        path = root / desc if root else None
        if path is not None and path.is_file():
            entry["bytes"] = path.stat().st_size
            if hash_files:
                entry["sha256"] = sha256_file(path)
        else:
            entry["missing"] = True
        files.append(entry)
    info["files"] = files
    info["files_missing"] = sum(1 for f in files if f.get("missing"))
    return info


def stages_info(store: RunStore) -> dict:
    """Each finished stage's key, version, parameters, inputs, finish time and summary."""
    out = {}
    for name in store.completed():
        man = store.manifest(name)
        summary = store.summary(name)
        out[name] = {"key": man.get("key"), "version": man.get("version"), "params": man.get("params"),
                     "deps": man.get("deps"), "finished": man.get("finished"), "summary": summary}
    return out


def seeds_info(config: dict, store: RunStore) -> dict:
    seeds = {k: config[k] for k in ("seed", "seeds", "world_seed") if k in config}
    run = Run(store.root)
    for entry in run.topk.layers:
        fv = run.featvis(entry.name)
        if fv is not None and "seeds" in fv.meta:
            seeds.setdefault("featvis", {})[entry.name] = fv.meta["seeds"]
    return seeds


def collect(run_dir: str | Path, hash_data: bool = True) -> dict:
    """The provenance record of a run folder."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    config = store.read_config()
    stages = stages_info(store)
    timings = {name: s["summary"].get("seconds") for name, s in stages.items()}
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "atlas": atlas_info(),
            "environment": environment(), "model": model_info(store),
            "dataset": dataset_info(run_dir, config, hash_data), "config": config,
            "seeds": seeds_info(config, store), "stages": stages,
            "timings": {"stages": timings,
                        "total_seconds": round(sum(t for t in timings.values() if isinstance(t, (int, float))), 2)}}
