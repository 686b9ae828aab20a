"""Heatmaps: a unit's activation map over a whole image, drawn on the image.

Conv units use their own activation map, upsampled bilinearly to the display size (as
NetDissect does); the maps of one unit's top images share one scale, so a weaker image
looks weaker. Vector (fc) units have no map; for them the map is the input-gradient
saliency of the unit (Simonyan et al. 2014), smoothed, or its Grad-CAM map (gradcam.py),
each image on its own scale.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def interpolation_matrix(n: int, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(size, n): 1-D linear interpolation with half-pixel centres (PyTorch's align_corners=False)."""
    eye = torch.eye(n, device=device).view(n, 1, n)
    return F.interpolate(eye, size=size, mode="linear", align_corners=False)[:, 0].T.contiguous()


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(..., h, w) -> (..., size, size), bilinear with half-pixel centres, as F.interpolate
    computes it, written as two small matrix products (several times faster on a CPU)."""
    h, w = maps.shape[-2:]
    rows = interpolation_matrix(h, size, maps.device)
    cols = interpolation_matrix(w, size, maps.device)
    return rows @ maps.float() @ cols.T


def unit_scale(maps: np.ndarray) -> np.ndarray:
    """(C, k, H, W) activation maps -> [0, 1], one scale per unit (its largest value);
    negative activations (which the next ReLU removes) count as zero."""
    pos = np.nan_to_num(np.maximum(maps, 0), nan=0.0, posinf=0.0)
    top = pos.reshape(pos.shape[0], -1).max(axis=1).reshape(-1, 1, 1, 1)
    return np.divide(pos, top, out=np.zeros_like(pos), where=top > 0)


def saliency(grad: torch.Tensor, size: int) -> torch.Tensor:
    """Input gradients (R, 3, S, S) -> smoothed |gradient| maps (R, size, size) in [0, 1]."""
    s = grad.abs().amax(dim=1, keepdim=True)
    k = max(3, (s.shape[-1] // 16) | 1)  # a box blur about 1/16 of the image wide, odd
    s = F.avg_pool2d(s, k, stride=1, padding=k // 2, count_include_pad=False)
    s = F.interpolate(s, size=(size, size), mode="area" if s.shape[-1] > size else "bilinear",
                      **({} if s.shape[-1] > size else {"align_corners": False}))[:, 0]
    top = s.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (s / top).clamp(0, 1)


def colormap(a: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB float in [0, 1]: a perceptually ordered 'hot' ramp (black-red-yellow-white)."""
    a = np.clip(a, 0, 1)[..., None]
    return np.clip(np.concatenate([3 * a, 3 * a - 1, 3 * a - 2], axis=-1), 0, 1)


def overlay(images: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """images (..., H, W, 3) uint8 and heat (..., H, W) in [0, 1] -> uint8 overlays.

    Where the unit is silent the image is dimmed to a third; where it fires the image
    shows through a warm tint, so both what is there and where the unit looks stay visible.
    """
    img = images.astype(np.float32) / 255
    heat = np.nan_to_num(heat.astype(np.float32), nan=0.0)  # a NaN map (poisoned net) shows no heat
    a = heat[..., None]
    dim = img * (0.3 + 0.7 * a)
    tint = colormap(heat)
    out = dim * (1 - 0.45 * a) + tint * 0.45 * a
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)
