"""Activation reached and CPU time of the image priors' steps in float32 against bfloat16
(`featvis_dtype`), side by side in one run, on the shipped CIFAR-10 network.

    python benchmarks/featvis_dtype.py                      # fc7 units 0-31, 2 seeds, pixel/fourier/maco
    python benchmarks/featvis_dtype.py --units 8 --priors fourier

Each prior runs at its default iterations, as the featvis stage runs it (same seeds, the
network's graph rewrites on both sides); the stored uint8 images' activations are measured
on the unmodified model in float32. The last line is one JSON object keyed by prior:
`{"fourier": {"float32_act", "bfloat16_act", "act_ratio", "float32_cpu_s", "bfloat16_cpu_s", "speedup"}, ...}`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's atlas
sys.path.insert(0, str(Path(__file__).resolve().parent))      # vs_lucent's spectrum images

import torch  # noqa: E402

from atlas.config import Config  # noqa: E402
from atlas.models import get_spec, load_model  # noqa: E402
from atlas.priors.maco import data_spectrum  # noqa: E402
from atlas.priors.objectives import unit_objective  # noqa: E402
from atlas.priors.target import NetTarget, to_uint8  # noqa: E402
from atlas.stages.featvis import element_seed, optimize, prior_settings  # noqa: E402
from vs_lucent import spectrum_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=32, help="cifarnet fc7 units 0..N-1")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--priors", nargs="+", default=["fourier", "pixel", "maco"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = get_spec("cifarnet")
    model = load_model(spec)
    node = "classifier.fc7"
    seeds = [element_seed(0, node, u, s) for u in range(args.units) for s in range(args.seeds)]
    objective = unit_objective(node, torch.arange(args.units).repeat_interleave(args.seeds))
    settings = prior_settings(Config(), args.priors)
    plain = NetTarget(model, spec, fold=False)
    result = {}
    for prior in args.priors:
        resource = {"magnitude": data_spectrum(spectrum_images("cifarnet", spec.input_size))} if prior == "maco" else None
        row = {}
        for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
            target = NetTarget(model, spec, channels_last=True, compute_dtype=dtype)
            t0 = time.process_time()
            res = optimize(prior, target, objective, seeds, settings[prior], resource)
            row[f"{name}_cpu_s"] = round(time.process_time() - t0, 2)
            row[f"{name}_act"] = round(float(plain.activations_of_uint8(to_uint8(res.images), objective).mean()), 4)
        row["act_ratio"] = round(row["bfloat16_act"] / row["float32_act"], 3)
        row["speedup"] = round(row["float32_cpu_s"] / row["bfloat16_cpu_s"], 2)
        row["iterations"] = settings[prior].iters
        result[prior] = row
        print(f"{prior}: {row}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
