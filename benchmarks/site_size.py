"""How many bytes an atlas of real photos costs per unit, and how sharp its evidence is.

A 224-px run of torchvision AlexNet (random weights) on `../shared/data/photos`, layers
conv5 and fc8, k = 9, with the pixel and Fourier priors and DGN-AM through a full-size
fc6 generator file (DeePSiM fc6 architecture, random weights: real bytes, meaningless
pictures) x 2 seeds on the first `--units` units of each layer. Then the site's size per
part (atlas.render.budget). The last line printed is one JSON object:

    {"bytes_per_unit": B, "patch_px_conv5": P, "encode_s_per_unit": E, ...}

bytes_per_unit = all site bytes except image pages, their thumbnails and the maps (the
top images' views, shared by unit and image pages, are counted), over the units of the
two layers. patch_px_conv5 = the side of a conv5 patch as shown (its receptive field at
the model's resolution). encode_s_per_unit = image encoding time in the stages (evidence:
views and grid strips; featvis: the PNG strips), over units. Goals: patch_px_conv5 >= 128, bytes_per_unit <= 100 kB.

    python benchmarks/site_size.py [--data DIR] [--out DIR] [--units 3] [--iters 10] [--fc-heatmaps gradcam]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from atlas.priors.genfile import CodeStats, GeneratorBundle, save_generator  # noqa: E402
from atlas.priors.generator import FC6_FULL, DeePSiM  # noqa: E402
from atlas.render.budget import site_sizes  # noqa: E402
from atlas.artifacts.store import read_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def random_fc6_generator(path: Path) -> None:
    """A generator file of the released fc6 generator's size (4096-d code, 256-px output)."""
    net = DeePSiM(FC6_FULL).init_weights(torch.Generator().manual_seed(0))
    save_generator(path, GeneratorBundle(net, CodeStats(ub=torch.full((FC6_FULL.code_dim,), 4.0)),
                                         {"code_node": "classifier.relu6"}, {"note": "random weights (site_size)"}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data" / "photos"))
    ap.add_argument("--out", help="keep the run here (default: a temporary folder)")
    ap.add_argument("--units", type=int, default=3, help="units per layer with feature visualizations")
    ap.add_argument("--iters", type=int, default=10, help="iterations per prior (bytes do not depend on them)")
    ap.add_argument("--fc-heatmaps", default="gradcam")
    args = ap.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="atlas-site-size-"))
    base.mkdir(parents=True, exist_ok=True)
    gen = base / "fc6-random.atlasgen.pt"
    if not gen.is_file():
        random_fc6_generator(gen)
    run = base / "run"
    cmd = [sys.executable, "-m", "atlas", "run", "--model", "alexnet", "--weights", "random", "--data", args.data,
           "--layers", "conv5", "fc8", "--out", str(run), "--set", "topk=9", "seeds=2", f"units_limit={args.units}",
           f"generator={gen}", f"dgn_iters={args.iters}", f"pixel_iters={args.iters}",
           f"fourier_iters={args.iters}", f"fc_heatmaps={args.fc_heatmaps}", 'priors=["dgn","pixel","fourier"]']
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    sizes = site_sizes(run / "site")
    layers = read_json(run / "stages" / "topk" / "layers.json")
    units = sum(int(layer["units"]) for layer in layers)
    total = sum(v["bytes"] for v in sizes.values())
    counted = total - sizes["images"]["bytes"] - sizes["maps"]["bytes"]
    conv5 = read_json(run / "stages" / "evidence" / "features.10" / "meta.json")
    encode_s = {kind: sum(read_json(f).get("encode_s", 0.0) for f in (run / "stages" / kind).glob("*/summary.json"))
                for kind in ("featvis", "evidence")}
    result = {"bytes_per_unit": round(counted / units), "patch_px_conv5": int(conv5["patch_size"]),
              "encode_s_per_unit": round(sum(encode_s.values()) / units, 6),
              "encode_s_by_stage": {k: round(v, 3) for k, v in encode_s.items()}, "units": units, "site_bytes": total,
              "parts": sizes, "display_px": conv5["display_size"], "format": conv5["format"],
              "quality": conv5["quality"], "patch_window_conv5": conv5["patch_window"],
              "goals": {"patch_px_conv5": ">= 128", "bytes_per_unit": "<= 100000"}}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
