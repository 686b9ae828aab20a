"""Are the feature visualizations any good? Recognizability and activation, per prior.

    python benchmarks/fidelity.py                      # the world network (default)
    python benchmarks/fidelity.py --dataset cifar10    # needs cifarnet, cifarnet-judge, cifarnet-generator

For every output (fc8) unit and seed, each prior synthesizes an image (the featvis stage's
code path and settings). Then:
- recognizability[prior]: top-1 accuracy with which an independently trained classifier
  (the judge: other seed and width, never the visualized network) names the unit's class;
- act_ratio[prior]: the unit's activation for its synthesized image over its activation
  for its best real held-out image (mean over units of the seeds' mean);
- classifier_accuracy: the judge's accuracy on real held-out images (how much its verdict
  is worth); model_accuracy: the same for the visualized network.
The last line printed is one JSON object.

A data set is a `Setup` in SETUPS: which model is visualized, which judge and generator
files (in atlas/weights) are used, and where held-out real images come from. Adding one is
adding an entry there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's atlas

import numpy as np  # noqa: E402
import torch  # noqa: E402

from atlas.config import Config  # noqa: E402
from atlas.data.loader import make_loader, model_transform  # noqa: E402
from atlas.data.sources import FolderSource, Source, TorchvisionSource, WorldSource  # noqa: E402
from atlas.models import get_spec, load_model  # noqa: E402
from atlas.models.checkpoint import load_payload, load_state_dict_file, prepare_for_probing  # noqa: E402
from atlas.models.worldnet import WorldNet  # noqa: E402
from atlas.priors.objectives import unit_objective  # noqa: E402
from atlas.priors.target import NetTarget, to_uint8  # noqa: E402
from atlas.resources import weights_path  # noqa: E402
from atlas.stages.featvis import element_seed, optimize, prior_settings  # noqa: E402
from atlas.priors.genfile import load_generator  # noqa: E402


@dataclass(frozen=True)
class Setup:
    model: str                 # registered model name (visualized)
    judge: str                 # weight file in atlas/weights (WorldNet architecture, self-describing)
    generator: str             # generator file in atlas/weights
    held_out: Callable[[int], Source]
    output_node: str = "classifier.fc8"


SETUPS = {
    "world": Setup("worldnet", "worldnet-judge.pt", "worldnet-generator.pt",
                   lambda n: WorldSource(seed=2, count=n, size=32)),
    # train the three files with scripts/train_cifarnet.py (model and judge: another --seed and --width)
    # and `atlas train-generator --model cifarnet --data <CIFAR-10 folder>`
    "cifar10": Setup("cifarnet", "cifarnet-judge.pt", "cifarnet-generator.pt", lambda n: cifar10_test(n)),
}
CIFAR10_FOLDER = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test"  # this workplace's copy


def cifar10_test(n: int) -> Source:
    """CIFAR-10 test: the image-folder copy when there is one (ATLAS_CIFAR10 or the workplace's
    shared folder), else torchvision's CIFAR10 (downloaded online into ~/.cache/atlas/datasets)."""
    folder = Path(os.environ.get("ATLAS_CIFAR10", CIFAR10_FOLDER))
    if folder.is_dir():
        return FolderSource(folder, limit=n)
    return TorchvisionSource("CIFAR10", str(Path.home() / ".cache/atlas/datasets"), split="test", limit=n,
                             download=True)


def load_judge(path: Path) -> torch.nn.Module:
    payload = load_payload(path)
    model = WorldNet(**payload["config"])
    model.load_state_dict(load_state_dict_file(path))
    return prepare_for_probing(model)


@torch.no_grad()
def real_pass(source: Source, spec, nets: dict, node: str, batch: int = 256):
    """Accuracy of each net and the visualized net's best activation per output unit."""
    loader = make_loader(source, model_transform(spec), batch, workers=0)
    labels = torch.tensor(source.labels)
    correct = {k: 0 for k in nets}
    best = None
    for x, ids in loader:
        for k, (net, is_model) in nets.items():
            out = net(x)
            logits = out[node] if isinstance(out, dict) else out
            correct[k] += int((logits.argmax(1) == labels[ids]).sum())
            if is_model:
                m = logits.max(0).values
                best = m if best is None else torch.maximum(best, m)
    return {k: v / len(source) for k, v in correct.items()}, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="world", choices=sorted(SETUPS))
    ap.add_argument("--seeds", type=int, default=4, help="images per unit and prior")
    ap.add_argument("--priors", nargs="+", default=["dgn", "fourier", "pixel"])
    ap.add_argument("--held-out", type=int, default=2000, help="real held-out images")
    ap.add_argument("--dgn-iters", type=int, default=Config.dgn_iters)
    ap.add_argument("--pixel-iters", type=int, default=Config.pixel_iters)
    ap.add_argument("--fourier-iters", type=int, default=Config.fourier_iters)
    ap.add_argument("--dgn-clip-image", action=argparse.BooleanOptionalAction, default=Config.dgn_clip_image,
                    help="clamp G's images to 0..1 before the network sees them (the atlas default); "
                         "--no-dgn-clip-image is act_max.py exactly")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--save-sheet", type=Path, help="write a PNG: rows = priors, columns = units x seeds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    setup = SETUPS[args.dataset]
    missing = [f for f in (setup.judge, setup.generator) if not weights_path(f).is_file()]
    spec = get_spec(setup.model)
    if setup.model != "worldnet" and not weights_path(f"{setup.model}.pt").is_file():
        missing.insert(0, f"{setup.model}.pt")
    if missing:
        raise SystemExit(f"fidelity --dataset {args.dataset}: missing weight files in {weights_path('')}: "
                         f"{', '.join(missing)} (train them first; see SETUPS in {Path(__file__).name})")
    t0 = time.time()
    model = load_model(spec)
    judge = load_judge(weights_path(setup.judge))
    target = NetTarget(model, spec, channels_last=True)
    judge_target = NetTarget(judge, spec)
    n_units = len(spec.class_names)
    S = args.seeds
    cfg = Config(dgn_iters=args.dgn_iters, pixel_iters=args.pixel_iters, fourier_iters=args.fourier_iters,
                 dgn_clip_image=args.dgn_clip_image)
    settings = prior_settings(cfg)
    bundle = load_generator(weights_path(setup.generator)) if "dgn" in args.priors else None
    if bundle is not None:
        bundle.net.to(memory_format=torch.channels_last)

    accuracy, best_real = real_pass(setup.held_out(args.held_out), spec,
                                    {"judge": (judge, False), "model": (model, True)}, setup.output_node)
    units = torch.arange(n_units).repeat_interleave(S)
    seeds = [element_seed(cfg.seed, setup.output_node, u, s) for u in range(n_units) for s in range(S)]
    objective = unit_objective(setup.output_node, units)
    recog, ratio, ratio_median, act_mean, sheet_rows = {}, {}, {}, {}, []
    for prior in args.priors:
        images = optimize(prior, target, objective, seeds, settings[prior], bundle if prior == "dgn" else None).images
        stored = to_uint8(images)
        acts = target.activations_of_uint8(stored, objective).view(n_units, S)
        with torch.no_grad():
            x = stored.permute(0, 3, 1, 2).float() / 255.0
            verdict = judge(judge_target.normalize(x)).argmax(1)
        recog[prior] = round(float((verdict == units).float().mean()), 4)
        r = acts.mean(1) / best_real
        ratio[prior], ratio_median[prior] = round(float(r.mean()), 3), round(float(r.median()), 3)
        act_mean[prior] = round(float(acts.mean()), 3)
        sheet_rows.append(np.concatenate(list(stored.numpy()), axis=1))
        print(f"{prior}: recognizability {recog[prior]:.3f}, act ratio {ratio[prior]:.2f}", flush=True)
    if args.save_sheet:
        from PIL import Image
        img = Image.fromarray(np.concatenate(sheet_rows, axis=0))
        img.resize((img.width * 2, img.height * 2), Image.NEAREST).save(args.save_sheet)
    result = {"dataset": args.dataset, "recognizability": recog, "act_ratio": ratio,
              "act_ratio_median": ratio_median, "act_mean": act_mean,
              "best_real_act_mean": round(float(best_real.mean()), 3),
              "classifier_accuracy": round(accuracy["judge"], 4), "model_accuracy": round(accuracy["model"], 4),
              "units": n_units, "seeds": S, "priors": args.priors,
              "iterations": {p: settings[p].iters for p in args.priors}, "dgn_clip_image": args.dgn_clip_image,
              "model": setup.model, "judge": setup.judge, "generator": setup.generator,
              "held_out_images": args.held_out, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
