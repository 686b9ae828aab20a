"""MACO (Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with
MAgnitude Constrained Optimization"), batched.

The image lives in the Fourier domain of a decorrelated colour space. Its magnitude is
fixed to the average magnitude spectrum of natural images and only the phase is
optimized, so every image keeps natural images' energy per frequency (no high-frequency
noise, no flat gray). horama (the authors' package) downloads an ImageNet spectrum at run
time; here the spectrum is estimated offline from the run's own data set
(`data_spectrum`). Per step: phase -> standardized phase -> magnitude * exp(i phase) ->
inverse FFT -> standardized -> colours recorrelated -> sigmoid into 0..1; the network sees
a random crop of it (resized back to its input) plus noise; NAdam steps the phase (lr 1.0).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from atlas.priors.fourier import COLOR_CORRELATION_SVD_SQRT
from atlas.priors.objectives import Objective
from atlas.priors.plugins.maco import MacoSettings
from atlas.priors.render import render
from atlas.priors.target import NetTarget
from atlas.priors.transforms import Noise, RandomCrop


def color_matrix() -> np.ndarray:
    """The colour recorrelation matrix (Lucid's, columns scaled to a largest norm of 1)."""
    c = COLOR_CORRELATION_SVD_SQRT
    return (c / np.max(np.linalg.norm(c, axis=0))).astype(np.float32)


def data_spectrum(images: np.ndarray) -> np.ndarray:
    """The mean magnitude spectrum (3, H, W // 2 + 1) of uint8 images (N, H, W, 3) in the
    decorrelated colour space the phase is optimized in (each image standardized first, so
    bright and dark images weigh alike)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double() / 255.0
    x = (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 1e-4)
    inv = torch.from_numpy(np.linalg.inv(color_matrix()).astype(np.float64))
    dec = torch.einsum("ij,bjhw->bihw", inv, x)
    return torch.fft.rfft2(dec).abs().mean(0).float().numpy()


def _standardize(t: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std per batch element (horama standardizes its one image)."""
    dims = tuple(range(1, t.ndim))
    return (t - t.mean(dims, keepdim=True)) / (t.std(dims, keepdim=True) + 1e-4)


def spatial(phase: torch.Tensor, magnitude: torch.Tensor, size: int) -> torch.Tensor:
    """The decorrelated image (B, 3, size, size), standardized, whose spectrum has the
    given magnitude and the (standardized) phase."""
    p = _standardize(phase)
    spec = torch.complex(torch.cos(p) * magnitude, torch.sin(p) * magnitude)
    return _standardize(torch.fft.irfft2(spec, s=(size, size)))


def maco_param(seeds: list[int], magnitude: np.ndarray, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32):
    """(params, image_fn): a phase (B, 3, H, W // 2 + 1) from each element's own seed, under
    the fixed `magnitude` (3, H, W // 2 + 1); image_fn() is RGB in 0..1."""
    _, h, wf = magnitude.shape
    size = h
    phase = torch.stack([torch.randn(3, h, wf, generator=torch.Generator().manual_seed(int(s)),
                                     dtype=torch.float64) for s in seeds]).to(device, dtype)
    phase.requires_grad_(True)
    mag = torch.tensor(magnitude, device=device, dtype=dtype)
    color = torch.tensor(color_matrix(), device=device, dtype=dtype)

    def image_fn() -> torch.Tensor:
        img = torch.einsum("ij,bjhw->bihw", color, spatial(phase, mag, size))
        return torch.sigmoid(img)

    return [phase], image_fn


def maco_visualize(target: NetTarget, objective: Objective, seeds: list[int], magnitude: np.ndarray,
                   settings: MacoSettings = MacoSettings(),
                   progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, S, S) in 0..1 and their objective values (uncropped, noiseless)."""
    if magnitude.shape[1] != target.input_size:
        raise ValueError(f"spectrum is {magnitude.shape[1]} px, the network takes {target.input_size}")
    params, image_fn = maco_param(seeds, magnitude, target.device, target.dtype)
    transforms = [RandomCrop([s + 104729 for s in seeds], settings.iters, settings.crop_min, settings.crop_max,
                             settings.crop_shift),
                  Noise([s + 130363 for s in seeds], settings.noise)]
    opt = torch.optim.NAdam(params, lr=settings.lr)
    return render(params, image_fn, objective, target, settings.iters, opt, transforms, progress=progress)
