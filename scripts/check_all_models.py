"""The slow check (not in CI): every torchvision classifier, random weights, small input.

For each model not in the CI matrix (tests/test_model_matrix.py): build it, list its layers,
find the default layers, extract them, compute their receptive fields and run a few pixel
and Fourier feature-visualization steps on the logits; with --full, `atlas run` end to end
instead (the matrix's settings). Prints one line per model and writes a JSON report.

    python scripts/check_all_models.py [--full] [--only NAME ...] [--out notes/models-check.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas.models import get_spec, load_model  # noqa: E402
from atlas.models.registry import torchvision_names  # noqa: E402

MATRIX = {"alexnet", "vgg16", "resnet50", "densenet121", "mobilenet_v3_small", "efficientnet_b0",
          "convnext_tiny", "vit_b_16", "swin_t", "regnet_y_400mf"}
SIZES = (32, 64, 96, 128, 224, 299)  # the first that the architecture accepts


def light_check(name: str) -> dict:
    from atlas.evidence.receptive_field import receptive_fields
    from atlas.models.layers import extractor, resolve_layers
    from atlas.priors.objectives import unit_objective
    from atlas.priors.pixel import PixelSettings, pixel_visualize
    from atlas.priors.target import NetTarget
    errors = []
    for size in SIZES:
        try:
            spec = get_spec(name).at_input_size(size)
            model = load_model(spec, "random")
            layers = resolve_layers(model, spec, None)
            break
        except Exception as exc:  # noqa: BLE001 - too small for this architecture: try the next size
            errors.append(f"{size}px: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    else:
        return {"ok": False, "why": errors[-1], "tried": errors}
    with torch.no_grad():
        out = extractor(model, [l.name for l in layers])(torch.rand(2, 3, size, size))
    assert all(tuple(out[l.name].shape[1:]) == l.shape for l in layers)
    maps = [l for l in layers if l.kind == "conv"]
    fields = receptive_fields(model, size, maps[1:2] + layers[-1:])  # a stage output and the logits
    notes = sorted({n.split(":")[0] for f in fields.values() for n in f.notes if "token" in n or "effective" in n})
    target = NetTarget(model, spec)
    logits = layers[-1].name
    pixel_visualize(target, unit_objective(logits, torch.tensor([0]), "center"), [0], PixelSettings(iters=2))
    return {"ok": True, "input_size": size, "layers": [l.name for l in layers],
            "layouts": sorted({l.layout for l in layers}), "field_notes": notes}


def full_check(name: str, size: int) -> dict:
    from atlas.cli import main
    with tempfile.TemporaryDirectory() as tmp:
        rc = main(["run", "--model", name, "--weights", "random", "--data", "world", "--out", tmp,
                   "--input-size", str(size), "--set", "world_count=6", "topk=2", "seeds=1", "dgn_iters=2",
                   "pixel_iters=2", "fourier_iters=2", "workers=0", "batch_size=6", "maps=false",
                   "units_limit=1", "fc_heatmaps=gradcam", "priors=[\"pixel\", \"fourier\"]"])
    return {"ok": rc == 0, "rc": rc}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="atlas run end to end for each model")
    ap.add_argument("--only", nargs="+", help="these models only")
    ap.add_argument("--out", type=Path, default=ROOT / "notes" / "models-check.json")
    ap.add_argument("--resume", action="store_true", help="keep the models already in --out")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    names = args.only or [n for n in torchvision_names() if n not in MATRIX]
    report = json.loads(args.out.read_text()) if args.resume and args.out.is_file() else {}
    names = [n for n in names if n not in report]
    for name in names:
        t0 = time.time()
        try:
            res = light_check(name)
            if res["ok"] and args.full:
                res.update(full_check(name, res["input_size"]))
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the check goes on
            res = {"ok": False, "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                   "trace": traceback.format_exc(limit=3)}
        res["seconds"] = round(time.time() - t0, 1)
        report[name] = res
        print(f"{name:24} {'ok ' if res['ok'] else 'FAIL'} {res.get('input_size', '')!s:>4} {res['seconds']:6.1f}s "
              f"{res.get('why', ', '.join(res.get('layouts', [])))}", flush=True)
        args.out.write_text(json.dumps(report, indent=1))
    bad = [n for n, r in report.items() if not r["ok"]]
    print(f"{len(report) - len(bad)} of {len(report)} ran; cannot run: {', '.join(bad) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
