"""Image -> image transforms for the image-space priors (batched, per-element randomness).

Lucid's standard transforms (pad, jitter, random scale, random rotation, jitter) are one
random affine map per element and step; here they are drawn up front from each element's
own seeded generator and applied with a single grid_sample, filling outside the image with
gray as Lucid's constant padding does. Sizes scale with the input (Lucid's values are for
~224 px): `lucid_transforms(32)` jitters by a pixel or two, not by eight.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


class RandomAffine:
    """Each call applies the next step's jitter/scale/rotation to every element.

    Jitter in pixels (uniform integer in [-jitter, jitter] on each axis), scale and angle
    (degrees) chosen uniformly from the given lists; `fill` is the value outside the image.
    """

    def __init__(self, seeds: list[int], steps: int, size: int, jitter: int, scales: list[float],
                 angles: list[float], fill: float = 0.5):
        self.size, self.fill, self.step = size, fill, 0
        params = []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            shift = torch.randint(-jitter, jitter + 1, (steps, 2), generator=g).double()
            sc = torch.tensor(scales, dtype=torch.float64)[torch.randint(len(scales), (steps,), generator=g)]
            an = torch.tensor(angles, dtype=torch.float64)[torch.randint(len(angles), (steps,), generator=g)]
            params.append(torch.cat([shift, sc[:, None], an[:, None]], 1))
        self.params = torch.stack(params, 1)  # (steps, B, 4): dy, dx, scale, angle

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        p = self.params[min(self.step, len(self.params) - 1)].to(img.device)
        self.step += 1
        dy, dx, scale, angle = p.unbind(1)
        rad = angle * math.pi / 180.0
        cos, sin = torch.cos(rad) / scale, torch.sin(rad) / scale
        h, w = img.shape[-2:]
        theta = torch.stack([torch.stack([cos, -sin, -2 * dx / w], 1),
                             torch.stack([sin, cos, -2 * dy / h], 1)], 1).to(img.dtype)
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        return F.grid_sample(img - self.fill, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False) + self.fill


def lucid_transforms(size: int, seeds: list[int], steps: int) -> list[Transform]:
    """Lucid's standard_transforms scaled to an input of `size` pixels (jitter 8+4 px,
    scale 0.9..1.1, rotation -10..10 degrees, at 224 px)."""
    k = size / 224.0
    jitter = max(1, round(12 * k))
    scales = [1 + (i - 5) / 50.0 for i in range(11)]
    angles = [float(a) for a in list(range(-10, 11)) + 5 * [0]]
    return [RandomAffine(seeds, steps, size, jitter, scales, angles)]


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (Yosinski et al.'s periodic blur)."""
    if sigma <= 0:
        return img
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    pad = min(radius, img.shape[-1] - 1, img.shape[-2] - 1)
    if pad < radius:
        k = k[radius - pad:radius + pad + 1]
        k = k / k.sum()
    out = F.pad(img, (pad, pad, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, pad, pad), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def compose(transforms: list[Transform]) -> Transform:
    def apply(img: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            img = t(img)
        return img
    return apply


class RandomCrop:
    """MACO's augmentation (Fel et al. 2023): each step, every element is seen through a
    random square crop resized to the full image. The crop's side is uniform in
    [scale_min, scale_max] of the image's, its centre 0.5 + N(0, shift_std) of the side
    (horama's boxes), drawn up front from each element's own seed; outside the image
    the edge is reflected."""

    def __init__(self, seeds: list[int], steps: int, scale_min: float, scale_max: float, shift_std: float):
        self.step = 0
        params = []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            side = scale_min + torch.rand(steps, generator=g, dtype=torch.float64) * (scale_max - scale_min)
            centre = torch.randn(steps, 2, generator=g, dtype=torch.float64) * shift_std
            params.append(torch.cat([side[:, None], centre], 1))
        self.params = torch.stack(params, 1)  # (steps, B, 3): side, cy, cx (offsets from the middle)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        p = self.params[min(self.step, len(self.params) - 1)].to(img.device, img.dtype)
        self.step += 1
        side, cy, cx = p.unbind(1)
        zero = torch.zeros_like(side)
        theta = torch.stack([torch.stack([side, zero, 2 * cx], 1), torch.stack([zero, side, 2 * cy], 1)], 1)
        grid = F.affine_grid(theta, list(img.shape), align_corners=False)
        return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class Noise:
    """Adds N(0, std) + U(-std/2, std/2) noise (horama's pair), each element from its own
    seeded generator, so an element's noise does not depend on its batch."""

    def __init__(self, seeds: list[int], std: float):
        self.std = std
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.std <= 0:
            return img
        shape = tuple(img.shape[1:])
        gauss = torch.stack([torch.randn(shape, generator=g) for g in self.generators])
        unif = torch.stack([torch.rand(shape, generator=g) for g in self.generators]) - 0.5
        return img + ((gauss + unif) * self.std).to(img.device, img.dtype)
