"""DGN-AM (Nguyen et al. 2016) as the reference code `act_max.py` does it, batched.

Per iteration i of n, for every batch element (its own unit and its own seed):
  lr_i = lr_start + (lr_end - lr_start) * i / n              (linear schedule)
  x0 = G(z), center-cropped to the network's input size       (256 -> 227 in the paper;
                                                              resized first when far off: fit_to_input)
  g = d act / d x0                                            (the unit, or its centre neuron)
  x = x0 + lr_i / mean|g| * g                                 (image step, mean-|g| normalized)
  g_z = backprop of (x - x0) through G
  z = z + lr_i / mean|g_z| * g_z                              (code step, same normalization)
  z = clip(z, 0, ub) * 0.99                                   (bounds, then L2 decay)
An element whose image or code gradient is all zero (or not finite) stops after that
iteration, as act_max.py breaks out of its loop. The returned image is the last one fed
to the network (act_max.py's `best_xx`, overwritten every iteration: the last iterate,
not the best one).

Step units (`lr_units`): act_max.py's lr 8 -> 1e-10 is in the units of CaffeNet's fc6 code,
whose bounds (act_range/3x/fc6.txt) average 11.85: a mean step of 8 is about two thirds of
a bound. With `lr_units = "code"` (act_max.py) lr_i is used as it is, whatever the code's
scale; with `"bounds"` lr_i is multiplied by mean(ub) / 11.85, so the step keeps that
proportion to the generator's own bounds (a generator with CaffeNet's fc6 bounds gets
act_max.py's steps exactly; the CIFAR-10 fc6 generator, mean bound 0.86, gets steps 14x smaller).
`"auto"` is `"code"` for a schedule of 100 iterations or more and `"bounds"` for a shorter
one: in act_max.py's schedule the first half's steps are larger than most bounds (they push
the code to the corners of its box) and the second half settles it; a 40-iteration schedule
has too few small steps left to settle, and starts smaller instead.

Elements do not interact (the networks run in eval mode and every normalization is per
element), so one batched run equals running the elements one at a time.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch

from atlas.priors.genfile import GeneratorBundle
from atlas.priors.objectives import Objective
from atlas.priors.plugins.dgn import DGNSettings
from atlas.priors.target import NetTarget


FC6_MEAN_BOUND = 11.85  # mean of act_max.py's act_range/3x/fc6.txt (4096 bounds, 3..17)
AUTO_CODE_ITERS = 100    # lr_units "auto": act_max.py's own steps from this many iterations on


def lr_scale(ub: torch.Tensor, units: str, iters: int | None = None) -> float:
    """What the schedule's step sizes are multiplied by: 1 in the code's own units
    (act_max.py), mean(ub) / FC6_MEAN_BOUND in units of the bounds; "auto" is "code" for
    schedules of AUTO_CODE_ITERS iterations or more and "bounds" for shorter ones."""
    if units == "auto":
        if iters is None:
            raise ValueError("lr_units 'auto' needs the number of iterations")
        units = "code" if iters >= AUTO_CODE_ITERS else "bounds"
    if units == "code":
        return 1.0
    if units == "bounds":
        return float(ub.double().mean()) / FC6_MEAN_BOUND
    raise ValueError(f"lr_units must be 'code', 'bounds' or 'auto', got {units!r}")


def step_size(i: int, n: int, start: float, end: float) -> float:
    """act_max.py's linear schedule: start at i = 0, one step short of `end` at i = n - 1."""
    return start + (end - start) * i / n


def normalized_step(grad: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """lr / mean|g| * g per batch element, and whether the element's gradient was usable
    (non-zero and finite). Unusable elements get a zero step."""
    m = grad.abs().flatten(1).mean(1)
    ok = (m > 0) & torch.isfinite(m)
    scale = torch.where(ok, lr / torch.where(ok, m, torch.ones_like(m)), torch.zeros_like(m))
    step = grad * scale.view(-1, *([1] * (grad.ndim - 1)))
    return torch.where(ok.view(-1, *([1] * (grad.ndim - 1))), step, torch.zeros_like(step)), ok


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Center crop (B, C, H, W) to size x size, offset (H - size) // 2 as act_max.py's topleft."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"generator output {h}x{w} is smaller than the network's input {size}x{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


PAPER_CROP = 256 / 227  # the generator's image over the network's input in the paper


def fit_to_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """A generator's images (B, C, H, W) as the target network's `size` x `size` input: a
    centre crop when the image is up to 25% larger (256 -> 227 as in the paper), else first
    a differentiable bilinear resize to the paper's ratio (round(size * 256 / 227)), so any
    generator can drive any network (e.g. a 256 px generator and a 32 px network)."""
    h = x.shape[-1]
    if not size <= h <= 1.25 * size or x.shape[-2] != h:
        side = max(size, round(size * PAPER_CROP))
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    return center_crop(x, size)


def initial_codes(seeds: list[int], dim: int, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One N(0, 1) code per seed (act_max.py's start code), each from its own seeded generator,
    so an element's start does not depend on what else shares its batch."""
    rows = [torch.randn(dim, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
            for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)


@dataclass
class DGNResult:
    images: torch.Tensor      # (B, 3, S, S) RGB 0..1, unclamped: the last image fed to the network
    codes: torch.Tensor       # (B, D) the final codes
    acts: torch.Tensor        # (B,) the objective at the returned image
    iterations: torch.Tensor  # (B,) iterations run before stopping
    best_images: torch.Tensor | None = None  # (B, 3, S, S) the iterate of highest objective
    best_acts: torch.Tensor | None = None    # (B,) its objective


def dgn_am(bundle: GeneratorBundle, target: NetTarget, objective: Objective, z0: torch.Tensor,
           settings: DGNSettings = DGNSettings(), autocast: bool = False,
           progress: Callable[[int], None] | None = None) -> DGNResult:
    """Optimize the codes z0 (B, D) so that G(z) maximizes each element's objective."""
    dev, dtype = target.device, target.dtype
    z = z0.to(dev, dtype).clone()
    ub = bundle.stats.ub.to(dev, dtype)
    zero = torch.zeros_like(ub)
    size = target.input_size
    n = settings.iters
    scale = lr_scale(ub, settings.lr_units, n)
    active = torch.ones(len(z), dtype=torch.bool, device=dev)
    ran = torch.zeros(len(z), dtype=torch.long, device=dev)
    last_img = None
    last_act = torch.zeros(len(z), dtype=dtype, device=dev)
    best_img, best_act = None, torch.full((len(z),), -float("inf"), dtype=dtype, device=dev)
    amp = (torch.autocast(dev.type, dtype=torch.bfloat16) if autocast and dev.type == "cuda"
           else contextlib.nullcontext())
    for i in range(n):
        lr = step_size(i, n, settings.lr_start, settings.lr_end) * scale
        zi = z.detach().requires_grad_(True)
        with amp:
            x0 = fit_to_input(bundle.images(zi), size)
            if settings.clip_image:
                x0 = x0.clamp(0, 1)
        xin = x0.detach().to(dtype).requires_grad_(True)
        with amp:
            act = objective(target(xin, objective.nodes))
        g_img, = torch.autograd.grad(act.float().sum(), xin)
        d, ok_img = normalized_step(g_img, lr)          # x - x0
        g_code, = torch.autograd.grad(x0, zi, grad_outputs=d.to(x0.dtype))
        step, ok_code = normalized_step(g_code.to(dtype), lr)
        new = z + step
        if settings.clip:
            new = torch.minimum(torch.maximum(new, zero), ub)
        if 0 < settings.decay < 1:
            new = new * settings.decay
        upd = active.view(-1, 1)
        z = torch.where(upd, new, z)
        img = x0.detach().to(dtype)
        last_img = img if last_img is None else torch.where(upd.view(-1, 1, 1, 1), img, last_img)
        last_act = torch.where(active, act.detach().to(dtype), last_act)
        better = active & (act.detach().to(dtype) > best_act)
        best_img = img if best_img is None else torch.where(better.view(-1, 1, 1, 1), img, best_img)
        best_act = torch.where(better, act.detach().to(dtype), best_act)
        ran = ran + active.long()
        active = active & ok_img & ok_code
        if progress is not None:
            progress(1)
        if not bool(active.any()):
            if progress is not None and n - i - 1 > 0:
                progress(n - i - 1)
            break
    return DGNResult(last_img, z.detach(), last_act, ran, best_img, best_act)
