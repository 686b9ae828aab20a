"""atlas's image-space priors beside the tools people use instead, side by side in one run.

    python benchmarks/vs_lucent.py                 # both networks, Fourier vs Lucent, MACO vs horama
    python benchmarks/vs_lucent.py --iters 64 --cifar-units 16 --alexnet-units 4   # shorter
    python benchmarks/vs_lucent.py --dtype float32  # atlas's steps in float32 (default: featvis_dtype "auto")

Fourier: atlas's batched Fourier prior (all units in one optimization) against Lucent's
`render_vis` (one unit per call, its default `param.image` = FFT + decorrelated colour,
its default `standard_transforms`, Adam lr 0.05), on the same network, units, iterations
and image size (the network's input: Lucent's upsampling to 224 is switched off with
`fixed_image_size`, and its ImageNet normalization is replaced by the model's own, which
a wrapper applies, so both see 0..1 images the same way). MACO: atlas's MACO prior
against horama's `maco` (the authors' package; one unit per call, its defaults except the
canvas, which is the network's input here as in atlas, and the magnitude spectrum, which
horama downloads: it is handed atlas's spectrum of the same images through the file
horama looks for), or, when horama does not import, against atlas's own MACO loop run one
unit at a time.

Networks: the shipped CIFAR-10 network (`cifarnet`, fc7 units) and torchvision AlexNet
with random weights (fc8 units). Both sides run on one CPU thread. units/s counts units
finished per CPU-second of this process (CPU time, not wall time: the machine is
shared, and wall time would charge one side with whatever else ran meanwhile). atlas runs
as its featvis stage does: batch norms folded into the convolutions, steps in
`featvis_dtype` (`--dtype`, default "auto": bfloat16 autocast on a CPU with native
bfloat16; the JSON's `atlas_dtype` says which ran); Lucent runs the model as given, in
float32, as its defaults do. The activation is each final image's objective (no
transforms), averaged over units, measured for both sides on the unfolded model in float32. The last line is one JSON object:
`{"cifarnet": {"speed_vs_lucent", "act_vs_lucent", ..., "maco": {...}}, "alexnet": {...}}`.

Lucent 0.1.8 declares old pins; install it with
`pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator ipython`
(horama: `pip install horama einops`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's atlas

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from atlas.data.loader import display_transform  # noqa: E402
from atlas.data.sources import FolderSource, Source, WorldSource  # noqa: E402
from atlas.models import get_spec, load_model  # noqa: E402
from atlas.priors.fourier import fourier_visualize  # noqa: E402
from atlas.priors.maco import data_spectrum, maco_visualize  # noqa: E402
from atlas.priors.objectives import unit_objective  # noqa: E402
from atlas.priors.plugins.fourier import FourierSettings  # noqa: E402
from atlas.priors.plugins.maco import MacoSettings  # noqa: E402
from atlas.priors.target import NetTarget, compute_dtype  # noqa: E402

LUCENT_HINT = "pip install --no-deps torch-lucent==0.1.8 kornia==0.4.1 decorator ipython"
CIFAR10_FOLDER = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test"


class Normalized(nn.Module):
    """The model with its own preprocessing in front: Lucent feeds it 0..1 images."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.net = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def lucent_name(module_path: str) -> str:
    """Lucent's hook name of a module under the wrapper: `net_classifier_fc7`."""
    return "net_" + module_path.replace(".", "_")


def spectrum_images(name: str, size: int, n: int = 256) -> np.ndarray:
    """Real images for MACO's magnitude spectrum: CIFAR-10 test photos (the shared folder)
    for cifarnet, the procedural world otherwise (AlexNet here has random weights)."""
    src: Source
    if name == "cifarnet" and Path(os.environ.get("ATLAS_CIFAR10", CIFAR10_FOLDER)).is_dir():
        src = FolderSource(Path(os.environ.get("ATLAS_CIFAR10", CIFAR10_FOLDER)), limit=n)
    else:
        src = WorldSource(seed=2, count=n, size=max(size, 64))
    tf = display_transform(get_spec(name))
    return np.stack([tf(src.load(i)).permute(1, 2, 0).numpy() for i in range(len(src))])


def mean_act(target: NetTarget, node: str, units: list[int], images01: torch.Tensor) -> float:
    with torch.no_grad():
        obj = unit_objective(node, torch.tensor(units))
        return float(obj(target(images01.float(), obj.nodes)).mean())


def run_lucent(model: nn.Module, node: str, units: list[int], iters: int, size: int) -> tuple[float, torch.Tensor]:
    from lucent.optvis import param, render
    images = []
    t0 = _clock()
    for u in units:
        out = render.render_vis(model, f"{lucent_name(node)}:{u}", param_f=lambda: param.image(size),
                                thresholds=(iters,), preprocess=False, progress=False, show_image=False,
                                fixed_image_size=size)
        images.append(torch.from_numpy(out[-1][0]).permute(2, 0, 1))
    return _clock() - t0, torch.stack(images)


def run_horama(model: nn.Module, spec, node: str, units: list[int], iters: int, magnitude: np.ndarray):
    """horama's maco, one unit per call; its images are in the model's input space."""
    from horama import maco
    target = NetTarget(model, spec)
    size = spec.input_size
    images = []
    with tempfile.TemporaryDirectory() as tmp, _cwd(tmp):
        np.save("spectrum_decorrelated.npy", magnitude)   # horama's cached spectrum file: no download
        t0 = _clock()
        for u in units:
            obj = unit_objective(node, torch.tensor([u]))

            def objective(x, obj=obj):
                out = target.net_for(obj.nodes)(x)
                return obj(out).mean()

            img, _ = maco(objective, total_steps=iters, image_size=size, model_input_size=size, device="cpu")
            images.append(img.detach())
        seconds = _clock() - t0
    x = torch.stack(images)
    return seconds, x * target.std + target.mean   # back to 0..1 pixels, as atlas stores them


def _clock() -> float:
    """This process's CPU time: on a shared machine, other processes' load does not enter
    the ratio (both sides run on one thread, so CPU time is compute time)."""
    return time.process_time()


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


@contextlib.contextmanager
def _cwd(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def compare(name: str, weights: str | None, node: str, n_units: int, iters: int, maco_iters: int, seed: int,
            ref_units: int, dtype: str = "auto") -> dict:
    spec = get_spec(name)
    torch.manual_seed(seed)
    model = load_model(spec, weights)
    size = spec.input_size
    units = list(range(n_units))
    steps = compute_dtype(dtype, "cpu")
    target = NetTarget(model, spec, channels_last=True, compute_dtype=steps)   # as the featvis stage runs
    plain = NetTarget(model, spec, fold=False)                                 # measures both sides
    wrapped = Normalized(model, spec.mean, spec.std).eval()
    obj = unit_objective(node, torch.tensor(units))
    seeds = [seed * 1000 + u for u in units]
    res: dict = {"units": n_units, "iterations": iters, "image_size": size, "layer": node, "weights": weights,
                 "atlas_dtype": str(steps or torch.float32).removeprefix("torch.")}

    t0 = _clock()
    atlas_img, _ = fourier_visualize(target, obj, seeds, FourierSettings(iters=iters))
    t_atlas = _clock() - t0
    torch.manual_seed(seed)
    t_lucent, lucent_img = run_lucent(wrapped, node, units, iters, size)
    a_atlas, a_lucent = mean_act(plain, node, units, atlas_img), mean_act(plain, node, units, lucent_img)
    res.update({"atlas_units_per_s": round(n_units / t_atlas, 3), "lucent_units_per_s": round(n_units / t_lucent, 3),
                "speed_vs_lucent": round(t_lucent / t_atlas, 2),
                "atlas_act_mean": _sig(a_atlas), "lucent_act_mean": _sig(a_lucent),
                "act_vs_lucent": round(a_atlas / a_lucent, 3) if a_lucent > 0 else None})
    print(f"{name} Fourier: atlas {n_units / t_atlas:.2f} units/s, act {a_atlas:.4g}; "
          f"lucent {n_units / t_lucent:.2f} units/s, act {a_lucent:.4g}", flush=True)

    magnitude = data_spectrum(spectrum_images(name, size))
    t0 = _clock()
    maco_img, _ = maco_visualize(target, obj, seeds, magnitude, MacoSettings(iters=maco_iters))
    t_maco = _clock() - t0
    k = min(ref_units, n_units)   # the one-unit-per-call reference runs on the first k units
    m: dict = {"iterations": maco_iters, "units": n_units, "reference_units": k,
               "atlas_units_per_s": round(n_units / t_maco, 3),
               "atlas_act_mean": _sig(mean_act(plain, node, units[:k], maco_img[:k]))}
    try:
        import horama  # noqa: F401
        ref, ref_name = "horama", "horama"
    except ImportError:
        ref, ref_name = None, "atlas one unit at a time (horama does not import)"
    torch.manual_seed(seed)
    if ref == "horama":
        t_ref, ref_img = run_horama(model, spec, node, units[:k], maco_iters, magnitude)
    else:
        t1 = _clock()
        ref_img = torch.cat([maco_visualize(target, unit_objective(node, torch.tensor([u])), [s], magnitude,
                                            MacoSettings(iters=maco_iters))[0] for u, s in zip(units[:k], seeds)])
        t_ref = _clock() - t1
    a_ref = mean_act(plain, node, units[:k], ref_img)
    m.update({"reference": ref_name, "reference_units_per_s": round(k / t_ref, 3),
              "reference_act_mean": _sig(a_ref), "speed_vs_reference": round((n_units / t_maco) / (k / t_ref), 2),
              "act_vs_reference": round(m["atlas_act_mean"] / a_ref, 3) if a_ref > 0 else None})
    print(f"{name} MACO: atlas {n_units / t_maco:.2f} units/s, act {m['atlas_act_mean']:.2f}; "
          f"{ref_name} {k / t_ref:.2f} units/s, act {a_ref:.4g}", flush=True)
    res["maco"] = m
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=128, help="iterations of both Fourier optimizations")
    ap.add_argument("--maco-iters", type=int, default=None, help="MACO iterations (default: --iters)")
    ap.add_argument("--cifar-units", type=int, default=64, help="cifarnet fc7 units")
    ap.add_argument("--alexnet-units", type=int, default=8, help="alexnet fc8 units")
    ap.add_argument("--maco-ref-units", type=int, default=4,
                    help="units the one-unit-per-call MACO reference runs (horama is slow: 6 crops a step)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both sides")
    ap.add_argument("--only", choices=["cifarnet", "alexnet"])
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                    help="atlas's steps (featvis_dtype); activations are compared in float32 either way")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        import lucent.optvis.render  # noqa: F401
    except ImportError as exc:
        print(f"vs_lucent: Lucent is not installed ({exc}); install it with: {LUCENT_HINT}", file=sys.stderr)
        raise SystemExit(2)
    torch.set_num_threads(args.threads)
    maco_iters = args.maco_iters or args.iters
    result = {}
    if args.only in (None, "cifarnet"):
        result["cifarnet"] = compare("cifarnet", None, "classifier.fc7", args.cifar_units, args.iters,
                                     maco_iters, args.seed, args.maco_ref_units, args.dtype)
    if args.only in (None, "alexnet"):
        result["alexnet"] = compare("alexnet", "random", "classifier.6", args.alexnet_units, args.iters,
                                    maco_iters, args.seed, args.maco_ref_units, args.dtype)
    result["threads"] = args.threads
    print(json.dumps(result))


if __name__ == "__main__":
    main()
