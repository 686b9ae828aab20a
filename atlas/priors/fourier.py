"""Lucid's decorrelated Fourier parameterization (Olah et al. 2017), batched.

The image is the inverse real FFT of a learned spectrum scaled by 1/frequency (so all
frequencies start with comparable energy), divided by 4, mapped through the square root
of the color correlation (decorrelated color), and squashed into 0..1 by a sigmoid.
Optimized with Adam (lr 0.05) under random jitter, scale and rotation each step.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from atlas.priors.objectives import Objective
from atlas.priors.plugins.fourier import FourierSettings
from atlas.priors.render import render
from atlas.priors.target import NetTarget
from atlas.priors.transforms import lucid_transforms

# Lucid's color_correlation_svd_sqrt (ImageNet), columns normalized by the largest norm
COLOR_CORRELATION_SVD_SQRT = np.asarray([[0.26, 0.09, 0.02],
                                         [0.27, 0.00, -0.05],
                                         [0.27, -0.09, 0.03]], dtype=np.float32)


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Frequency magnitude of each rfft2 coefficient, (h, w // 2 + 1)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def fourier_param(seeds: list[int], size: int, decay_power: float = 1.0, init_std: float = 0.05,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """(params, image_fn): a spectrum (B, 3, H, W//2+1, 2) from each element's own seed."""
    freqs = rfft2d_freqs(size, size)
    spec = torch.stack([torch.randn(3, *freqs.shape, 2, generator=torch.Generator().manual_seed(int(s)),
                                    dtype=torch.float64) * init_std for s in seeds]).to(device, dtype)
    spec.requires_grad_(True)
    scale = 1.0 / np.maximum(freqs, 1.0 / size) ** decay_power * np.sqrt(size * size)
    scale_t = torch.tensor(scale, device=device, dtype=dtype)
    color = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
    color_t = torch.tensor(color, device=device, dtype=dtype)

    def image_fn() -> torch.Tensor:
        coeffs = torch.complex(spec[..., 0], spec[..., 1]) * scale_t
        img = torch.fft.irfft2(coeffs, s=(size, size)) / 4.0          # (B, 3, H, W), decorrelated space
        img = torch.einsum("ij,bjhw->bihw", color_t, img)             # to RGB
        return torch.sigmoid(img)

    return [spec], image_fn


def fourier_visualize(target: NetTarget, objective: Objective, seeds: list[int],
                      settings: FourierSettings = FourierSettings(),
                      progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, S, S) in 0..1 and their objective values (without transforms)."""
    params, image_fn = fourier_param(seeds, target.input_size, settings.decay_power, settings.init_std,
                                     target.device, target.dtype)
    transforms = lucid_transforms(target.input_size, [s + 7919 for s in seeds], settings.iters) \
        if settings.transforms else []
    opt = torch.optim.Adam(params, lr=settings.lr)
    return render(params, image_fn, objective, target, settings.iters, opt, transforms, progress=progress)
