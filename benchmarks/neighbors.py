"""Nearest neighbours on CIFAR-10 test features: FAISS against NumPy brute force.

    python benchmarks/neighbors.py [--data /work/shared/data/cifar10/test] [--k 10]

Features are the penultimate layer (fc7) of a model atlas ships: `cifarnet` when its trained
weights are present, else the world network (trained on the procedural world, run on CIFAR
images). Recall@k is measured against float64 NumPy brute force: a returned neighbour is
correct when its true distance is within the true k-th distance (relative tolerance 1e-4,
float32 precision of the |q|^2 + |x|^2 - 2 q.x expansion FAISS uses, so exact ties in
float32 are not counted as misses); `id_recall_at_k` is the strict count of identical ids.
The speed-up is against float32 NumPy brute force (chunked GEMM + argpartition, the same
precision as FAISS); each timing is the best of five, the two methods interleaved, because
the machine is shared. The last line printed is one JSON object. Without the data it prints
{"skipped": reason} and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.data.loader import make_loader, model_transform  # noqa: E402
from atlas.data.sources import FolderSource  # noqa: E402
from atlas.maps.neighbors import brute_force, nearest_neighbors  # noqa: E402
from atlas.models import get_spec, load_model  # noqa: E402
from atlas.models.layers import extractor  # noqa: E402
from atlas.resources import weights_path  # noqa: E402

DEFAULT_DATA = "/work/shared/data/cifar10/test"


def pick_model() -> tuple[str, str]:
    if weights_path("cifarnet.pt").is_file():
        return "cifarnet", "trained (atlas/weights/cifarnet.pt)"
    return "worldnet", "shipped world weights (cifarnet.pt absent)"


def features(data: Path, model_name: str, batch: int, workers: int) -> np.ndarray:
    spec = get_spec(model_name)
    model = load_model(spec, None)
    net = extractor(model, [spec.penultimate])
    source = FolderSource(data)
    loader = make_loader(source, model_transform(spec), batch, workers)
    parts = []
    with torch.inference_mode():
        for x, _ in loader:
            parts.append(net(x)[spec.penultimate].float().numpy())
    out = np.concatenate(parts)
    return np.ascontiguousarray(out)


def interleaved(fns: dict, repeats: int = 5) -> dict:
    """name -> (best seconds, last result), running the functions in turn `repeats` times."""
    best = {name: (float("inf"), None) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            result = fn()
            best[name] = (min(best[name][0], time.perf_counter() - t0), result)
    return best


def id_recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))


def recall(found: np.ndarray, feats: np.ndarray, kth: np.ndarray, rtol: float = 1e-4) -> float:
    """Share of returned neighbours whose float64 distance is within the true k-th distance."""
    x = feats.astype(np.float64)
    d = np.linalg.norm(x[found] - x[:, None, :], axis=-1)
    return float((d <= kth[:, None] * (1 + rtol)).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        print(json.dumps({"skipped": f"CIFAR-10 test images not found at {data}"}))
        return 0
    model_name, weights = pick_model()
    t0 = time.perf_counter()
    feats = features(data, model_name, args.batch, args.workers)
    feat_s = time.perf_counter() - t0
    k = args.k
    truth, truth_d = brute_force(feats, k, dtype=np.float64)
    threads = faiss.omp_get_max_threads()

    def faiss_single():
        faiss.omp_set_num_threads(1)
        try:
            return nearest_neighbors(feats, k)
        finally:
            faiss.omp_set_num_threads(threads)

    runs = interleaved({"numpy": lambda: brute_force(feats, k, dtype=np.float32),
                        "faiss": lambda: nearest_neighbors(feats, k),
                        "faiss_1_thread": faiss_single,
                        "approximate": lambda: nearest_neighbors(feats, k, exact_max=0)})
    numpy_s = runs["numpy"][0]
    (faiss_s, exact), (single_s, _), (approx_s, approx) = runs["faiss"], runs["faiss_1_thread"], runs["approximate"]
    print(f"features: {feats.shape} from {model_name} in {feat_s:.1f} s; numpy {numpy_s:.3f} s, "
          f"faiss {exact.index} {faiss_s:.3f} s ({single_s:.3f} s on one thread), "
          f"{approx.index} {approx_s:.3f} s", flush=True)
    key = "recall_at_10" if k == 10 else f"recall_at_{k}"
    print(json.dumps({
        key: round(recall(exact.ids, feats, truth_d[:, -1]), 6),
        "speedup_vs_numpy": round(numpy_s / faiss_s, 2),
        "id_" + key: round(id_recall(exact.ids, truth), 6),
        "index": exact.index, "images": int(len(feats)), "dim": int(feats.shape[1]),
        "model": model_name, "weights": weights, "layer": get_spec(model_name).penultimate,
        "faiss_s": round(faiss_s, 4), "faiss_threads": threads, "faiss_1_thread_s": round(single_s, 4),
        "numpy_float32_s": round(numpy_s, 4),
        "approximate": {"index": approx.index, key: round(recall(approx.ids, feats, truth_d[:, -1]), 6),
                        "speedup_vs_numpy": round(numpy_s / approx_s, 2)},
        "machine": "2-core CPU, shared"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
