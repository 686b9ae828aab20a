"""Pixel-space gradient ascent with Yosinski et al.'s (2015) regularizers.

The image is optimized directly. After every step the regularizers act as projections,
in the paper's order: L2 decay toward the mean color, a Gaussian blur every few steps,
zeroing (setting to the mean color) the pixels of small norm and those of small
contribution (|sum over channels of x * grad|), each below a per-image percentile; then
the image is clipped to the valid range. Steps are act_max.py-style normalized (the
mean absolute gradient of each element is one unit), so one learning rate serves units
of every scale in one batch.
"""
from __future__ import annotations

from typing import Callable

import torch

from atlas.priors.objectives import Objective
from atlas.priors.plugins.pixel import PixelSettings
from atlas.priors.render import NormalizedAscent, render
from atlas.priors.target import NetTarget
from atlas.priors.transforms import gaussian_blur


def pixel_param(seeds: list[int], size: int, mean: tuple[float, float, float], init_std: float,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """(params, image_fn): image = mean color + x, x from each element's own seeded noise
    (params = [x], the offset from the mean color)."""
    x = torch.stack([torch.randn(3, size, size, generator=torch.Generator().manual_seed(int(s)),
                                 dtype=torch.float64) * init_std for s in seeds]).to(device, dtype)
    x.requires_grad_(True)
    m = torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1)
    return [x], (lambda: m + x)


def _zero_below_percentile(x: torch.Tensor, score: torch.Tensor, pct: float) -> None:
    """Set x to 0 where the per-element pixel score (B, H, W) is below its pct-th percentile."""
    if pct <= 0:
        return
    flat = score.flatten(1)
    k = int(pct / 100.0 * flat.shape[1])  # zero the k lowest-scoring pixels
    if k < 1:
        return
    thr = flat.kthvalue(k, dim=1).values
    x.mul_((score > thr.view(-1, 1, 1)).unsqueeze(1).to(x.dtype))


def pixel_visualize(target: NetTarget, objective: Objective, seeds: list[int],
                    settings: PixelSettings = PixelSettings(),
                    progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, S, S) in 0..1 and their objective values."""
    params, image_fn = pixel_param(seeds, target.input_size, target.spec.mean, settings.init_std,
                                   target.device, target.dtype)
    x = params[0]
    mean = torch.tensor(target.spec.mean, device=target.device, dtype=target.dtype).view(1, 3, 1, 1)
    opt = NormalizedAscent(params, settings.lr)

    @torch.no_grad()
    def regularize(i: int) -> None:
        grad = x.grad
        if 0 < settings.decay < 1:
            x.mul_(1 - settings.decay)
        if settings.blur_every and settings.blur_sigma > 0 and (i + 1) % settings.blur_every == 0:
            x.copy_(gaussian_blur(x, settings.blur_sigma))
        _zero_below_percentile(x, x.norm(dim=1), settings.norm_pct)
        if grad is not None:
            _zero_below_percentile(x, (x * grad).sum(1).abs(), settings.contrib_pct)
        x.copy_((mean + x).clamp(0, 1) - mean)

    return render(params, image_fn, objective, target, settings.iters, opt, post_step=regularize,
                  progress=progress)
