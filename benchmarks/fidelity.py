"""Are the feature visualizations any good? Naturalness, recognizability and activation, per prior.

    python benchmarks/fidelity.py                      # the world network (default)
    python benchmarks/fidelity.py --quick              # at the quick demo's budget (40 iterations each)
    python benchmarks/fidelity.py --dataset cifar10    # needs cifarnet, its judges and generator

For every output (fc8) unit and seed, each prior synthesizes an image (the featvis stage's
code path and settings). Then:
- recognizability[prior]: top-1 accuracy with which an independently trained classifier
  (the judge: other seed and width, never the visualized network) names the unit's class;
  misses[prior] says, for each class the judge did not always name, what it named its
  images instead (class -> count);
- act_ratio[prior]: the unit's activation for its synthesized image over its activation
  for its best real held-out image (mean over units of the seeds' mean);
- naturalness[prior]: KID (kernel inception distance, Binkowski et al. 2018) between the
  prior's images of each class and real held-out images of that class, in the judge's
  penultimate feature space (scaled by one constant, the real images' RMS feature),
  averaged over classes (lower is more natural). KID rather
  than FID: it is an unbiased estimate (the squared MMD under a cubic polynomial kernel),
  so it means the same with a handful of images per class as with thousands, where FID is
  biased by the sample size. naturalness_ci is a 95% interval over the classes (Student t
  on the per-class values); naturalness_real is the same KID for as many real held-out images
  per class, not those of the reference (the floor a prior could reach);
- classifier_accuracy: the judge's accuracy on real held-out images (how much its verdict
  is worth); model_accuracy: the same for the visualized network.
The judge is a small ResNet (atlas/models/judge_resnet.py, scripts/train_judge.py) when
its file is there: another architecture than the visualized AlexNet-style network; else
the older judge of the visualized network's own architecture (other seed and width). The
JSON's `judge` names the file used. The last line printed is one JSON object.

A data set is a `Setup` in SETUPS: which model is visualized, which judge and generator
files (in atlas/weights) are used, and where held-out real images come from. Adding one is
adding an entry there.
"""
from __future__ import annotations

import argparse
import collections
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

from atlas.config import Config, from_dict, quick, tomllib  # noqa: E402
from atlas.data.loader import make_loader, model_transform  # noqa: E402
from atlas.data.sources import FolderSource, Source, TorchvisionSource, WorldSource  # noqa: E402
from atlas.models import get_spec, load_model  # noqa: E402
from atlas.models.checkpoint import load_payload, load_state_dict_file, prepare_for_probing  # noqa: E402
from atlas.models.worldnet import WorldNet  # noqa: E402
from atlas.priors.objectives import unit_objective  # noqa: E402
from atlas.priors.target import NetTarget, compute_dtype, to_uint8  # noqa: E402
from atlas.resources import weights_path  # noqa: E402
from atlas.stages.featvis import element_seed, optimize, prior_settings  # noqa: E402
from atlas.priors.genfile import load_generator  # noqa: E402
from atlas.config import QUICK_ITERS  # noqa: E402
from atlas.data.loader import display_transform  # noqa: E402
from atlas.models.judge_resnet import JudgeResNet  # noqa: E402
from atlas.priors.maco import data_spectrum  # noqa: E402


@dataclass(frozen=True)
class Setup:
    model: str                 # registered model name (visualized)
    judge: str                 # weight file in atlas/weights (WorldNet architecture, self-describing)
    resnet_judge: str          # the ResNet judge's file (preferred when present)
    generator: str             # generator file in atlas/weights
    held_out: Callable[[int], Source]
    output_node: str = "classifier.fc8"


SETUPS = {
    "world": Setup("worldnet", "worldnet-judge.pt", "worldnet-resnet-judge.pt", "worldnet-generator.pt",
                   lambda n: WorldSource(seed=2, count=n, size=32)),
    # train the three files with scripts/train_cifarnet.py (model and judge: another --seed and --width)
    # and `atlas train-generator --model cifarnet --data <CIFAR-10 folder>`
    "cifar10": Setup("cifarnet", "cifarnet-judge.pt", "cifarnet-resnet-judge.pt", "cifarnet-generator.pt",
                     lambda n: cifar10_test(n)),
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
    model = (JudgeResNet if payload.get("arch") == "judge_resnet" else WorldNet)(**payload["config"])
    model.load_state_dict(load_state_dict_file(path))
    return prepare_for_probing(model)


def judge_logits_and_features(judge: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's logits and penultimate features (a ResNet's pooled last stage, a WorldNet's relu7)."""
    if isinstance(judge, JudgeResNet):
        f = judge.features(x)
        return judge.fc(f), f
    f = judge.classifier[:-1](torch.flatten(judge.features(x), 1))
    return judge.classifier[-1](f), f


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD with KID's kernel k(a, b) = (a.b / d + 1)^3 (x: m x d, y: n x d)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[1]
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


T975 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        19: 2.093, 99: 1.984}  # Student t, 97.5% quantile by degrees of freedom


def class_kid(fake: dict[int, np.ndarray], real: dict[int, np.ndarray]) -> tuple[float, list[float]]:
    """KID averaged over classes, and a 95% interval over classes (Student t on the
    per-class values: classes are the replicates; each value carries its own sampling
    noise). A bootstrap that resamples images with replacement would be biased here: the
    unbiased estimator counts a duplicated image as a perfect match."""
    vals = np.array([kid(fake[c], real[c]) for c in sorted(fake)])
    mean = float(vals.mean())
    if len(vals) < 2:
        return mean, [mean, mean]
    df = len(vals) - 1
    half = T975.get(df, T975[max(k for k in T975 if k <= df)]) * vals.std(ddof=1) / np.sqrt(len(vals))
    return mean, [round(float(mean - half), 4), round(float(mean + half), 4)]


def judge_misses(called: torch.Tensor, units: torch.Tensor, names: list[str]) -> dict[str, dict[str, int]]:
    """For each class some of whose images the judge named otherwise: what it named them
    (class name -> count), classes in unit order."""
    out: dict[str, dict[str, int]] = {}
    for c in range(len(names)):
        wrong = called[(units == c) & (called != units)]
        if len(wrong):
            out[names[c]] = dict(collections.Counter(names[int(j)] for j in wrong))
    return out


@torch.no_grad()
def real_pass(source: Source, spec, model, judge, node: str, batch: int = 256):
    """Accuracy of the judge and of the model, the model's best activation per output
    unit, and the judge's features of every image (N, d)."""
    loader = make_loader(source, model_transform(spec), batch, workers=0)
    labels = torch.tensor(source.labels)
    correct = {"judge": 0, "model": 0}
    best, feats = None, []
    for x, ids in loader:
        out = model(x)
        logits = out[node] if isinstance(out, dict) else out
        correct["model"] += int((logits.argmax(1) == labels[ids]).sum())
        m = logits.max(0).values
        best = m if best is None else torch.maximum(best, m)
        jl, jf = judge_logits_and_features(judge, x)
        correct["judge"] += int((jl.argmax(1) == labels[ids]).sum())
        feats.append(jf.numpy())
    return {k: v / len(source) for k, v in correct.items()}, best, np.concatenate(feats)


def save_class_figure(rows: list[np.ndarray], priors: list[str], class_names: list[str], seeds: int,
                      shown: int, path: Path) -> None:
    """A labelled grid: one row per prior, one column per class, the first `shown` seeds
    of each class side by side. rows[i] is prior i's images (units x seeds, H, W, 3)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(class_names)
    fig, axes = plt.subplots(len(priors), n, figsize=(1.1 * n * shown, 1.25 * len(priors) + 0.3), squeeze=False)
    for i, prior in enumerate(priors):
        imgs = rows[i].reshape(n, seeds, *rows[i].shape[1:])
        for c in range(n):
            ax = axes[i][c]
            ax.imshow(np.concatenate(list(imgs[c, :shown]), axis=1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(class_names[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(prior, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="world", choices=sorted(SETUPS))
    ap.add_argument("--seeds", type=int, default=8, help="images per unit and prior")
    ap.add_argument("--priors", nargs="+", default=["dgn", "fourier", "pixel", "maco"])
    ap.add_argument("--held-out", type=int, default=2000, help="real held-out images")
    ap.add_argument("--quick", action="store_true",
                    help=f"every prior at the quick demo's budget ({QUICK_ITERS} iterations, `atlas demo --quick`)")
    ap.add_argument("--judge", choices=["resnet", "same-arch"], default="resnet",
                    help="the ResNet judge (when its file exists) or the visualized network's architecture")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="prior config keys, as `atlas run --set` (e.g. dgn_iters=100 maco_lr=0.5)")
    for key in ("dgn_iters", "pixel_iters", "fourier_iters", "maco_iters"):
        ap.add_argument("--" + key.replace("_", "-"), type=int, help=f"the config key {key}")
    ap.add_argument("--dgn-clip-image", action=argparse.BooleanOptionalAction, default=None,
                    help="clamp G's images to 0..1 before the network sees them (the atlas default); "
                         "--no-dgn-clip-image with --set dgn_keep=last is act_max.py exactly")
    ap.add_argument("--generator", type=Path,
                    help="DGN-AM's generator file (default: the data set's shipped one, SETUPS)")
    ap.add_argument("--judge-file", type=Path, help="the judge's weight file (default: as --judge picks)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--save-figure", type=Path,
                    help="write a labelled PNG: rows = priors, columns = classes (first two seeds each)")
    ap.add_argument("--save-sheet", type=Path, help="write a PNG: rows = priors, columns = units x seeds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    setup = SETUPS[args.dataset]
    judge_file = setup.resnet_judge if args.judge == "resnet" and weights_path(setup.resnet_judge).is_file() \
        else setup.judge
    if args.judge == "resnet" and judge_file != setup.resnet_judge and not args.judge_file:
        print(f"note: {setup.resnet_judge} not found (scripts/train_judge.py); judging with {setup.judge}, "
              "of the visualized network's own architecture", flush=True)
    gen_path = args.generator or weights_path(setup.generator)
    judge_path = args.judge_file or weights_path(judge_file)
    missing = [str(f) for f in (judge_path, gen_path) if not Path(f).is_file()]
    spec = get_spec(setup.model)
    if setup.model != "worldnet" and not weights_path(f"{setup.model}.pt").is_file():
        missing.insert(0, str(weights_path(f"{setup.model}.pt")))
    if missing:
        raise SystemExit(f"fidelity --dataset {args.dataset}: missing weight files: "
                         f"{', '.join(missing)} (train them first; see SETUPS in {Path(__file__).name})")
    t0 = time.time()
    model = load_model(spec)
    judge = load_judge(judge_path)
    judge_target = NetTarget(judge, spec)
    n_units = len(spec.class_names)
    S = args.seeds
    overrides = {k: getattr(args, k) for k in ("dgn_iters", "pixel_iters", "fourier_iters", "maco_iters",
                                               "dgn_clip_image") if getattr(args, k) is not None}
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            overrides[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key] = raw  # a bare string, as `atlas run --set`
    cfg = from_dict(overrides)
    # the featvis stage's network: batch norms folded, steps in featvis_dtype (--set featvis_dtype=float32)
    target = NetTarget(model, spec, channels_last=True, compute_dtype=compute_dtype(cfg.featvis_dtype, "cpu"))
    if args.quick:
        cfg = quick(cfg)
    settings = prior_settings(cfg, args.priors)

    held_out = setup.held_out(args.held_out)
    accuracy, best_real, real_feats = real_pass(held_out, spec, model, judge, setup.output_node)
    real_labels = np.asarray(held_out.labels)
    # one fixed scale for every feature (the real images' RMS), so the kernel's a.b / d is O(1)
    feat_scale = float(np.sqrt((real_feats.astype(np.float64) ** 2).mean()))
    real_feats = real_feats / feat_scale
    resources = {}
    if "dgn" in args.priors:
        bundle = load_generator(gen_path)
        bundle.net.to(memory_format=torch.channels_last)
        resources["dgn"] = bundle
    if "maco" in args.priors:  # the spectrum of the held-out images: the run's own data set
        tf = display_transform(spec)
        resources["maco"] = {"magnitude": data_spectrum(np.stack(
            [tf(held_out.load(i)).permute(1, 2, 0).numpy() for i in range(min(512, len(held_out)))]))}
    reference = {c: real_feats[real_labels == c][::2] for c in range(n_units)}
    units = torch.arange(n_units).repeat_interleave(S)
    seeds = [element_seed(cfg.seed, setup.output_node, u, s) for u in range(n_units) for s in range(S)]
    objective = unit_objective(setup.output_node, units)
    recog, ratio, ratio_median, act_mean, nat, nat_ci, info, sheet_rows = {}, {}, {}, {}, {}, {}, {}, []
    misses: dict[str, dict] = {}
    per_prior: list[np.ndarray] = []
    for prior in args.priors:
        t1 = time.time()
        res = optimize(prior, target, objective, seeds, settings[prior], resources.get(prior))
        stored = to_uint8(res.images)
        acts = target.activations_of_uint8(stored, objective).view(n_units, S)
        with torch.no_grad():
            x = stored.permute(0, 3, 1, 2).float() / 255.0
            logits, feats = judge_logits_and_features(judge, judge_target.normalize(x))
        recog[prior] = round(float((logits.argmax(1) == units).float().mean()), 4)
        misses[prior] = judge_misses(logits.argmax(1), units, list(spec.class_names))
        fake = {c: feats.numpy()[(units == c).numpy()] / feat_scale for c in range(n_units)}
        value, nat_ci[prior] = class_kid(fake, reference)
        nat[prior] = round(value, 4)
        r = acts.mean(1) / best_real
        ratio[prior], ratio_median[prior] = round(float(r.mean()), 3), round(float(r.median()), 3)
        act_mean[prior] = round(float(acts.mean()), 3)
        info[prior] = {**res.info, "seconds": round(time.time() - t1, 1)}
        sheet_rows.append(np.concatenate(list(stored.numpy()), axis=1))
        per_prior.append(stored.numpy())
        print(f"{prior}: naturalness (KID) {nat[prior]:.4f} {nat_ci[prior]}, recognizability {recog[prior]:.3f}, "
              f"act ratio {ratio[prior]:.2f}", flush=True)
    if args.save_sheet:
        from PIL import Image
        img = Image.fromarray(np.concatenate(sheet_rows, axis=0))
        img.resize((img.width * 2, img.height * 2), Image.NEAREST).save(args.save_sheet)
    if args.save_figure:
        save_class_figure(per_prior, args.priors, list(spec.class_names), S, min(2, S), args.save_figure)
    # the floor: as many other real images per class (the odd ones) against the reference (the even ones)
    floor, floor_ci = class_kid({c: real_feats[real_labels == c][1::2][:S] for c in range(n_units)}, reference)
    result = {"dataset": args.dataset, "naturalness": nat, "naturalness_ci": nat_ci,
              "naturalness_real": round(floor, 4), "naturalness_real_ci": floor_ci,
              "naturalness_measure": "KID (cubic kernel) in the judge's penultimate features, per class, mean",
              "recognizability": recog, "misses": misses, "act_ratio": ratio,
              "act_ratio_median": ratio_median, "act_mean": act_mean,
              "best_real_act_mean": round(float(best_real.mean()), 3),
              "classifier_accuracy": round(accuracy["judge"], 4), "model_accuracy": round(accuracy["model"], 4),
              "units": n_units, "seeds": S, "priors": args.priors, "quick": args.quick,
              "iterations": {p: settings[p].iters for p in args.priors},
              "dgn_clip_image": settings["dgn"].clip_image if "dgn" in settings else None,
              "settings": {p: vars(settings[p]) for p in args.priors}, "timing": info,
              "model": setup.model, "judge": Path(judge_path).name, "generator": Path(gen_path).name,
              "held_out_images": args.held_out, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
