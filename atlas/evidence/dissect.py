"""NetDissect-style concept labels (Bau et al. 2017) from per-pixel concept masks.

For each unit: its threshold is the top `quantile` (0.5%) of all its activation values
over the data set (every image, every spatial position). Each activation map is
upsampled bilinearly to the mask size and thresholded; IoU with a concept is
|A and M| / |A or M|, both summed over the whole data set. A unit is labelled with its best
concept when that IoU exceeds `min_iou` (0.04).

Masks come as integer id maps, one per concept kind (e.g. shape, color, texture), -1 where
no concept of that kind is present.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch

from atlas.evidence.heatmaps import upsample


class RunningTopValues:
    """The `keep` largest values per unit over a stream of (B, C, h, w) activations."""

    def __init__(self, units: int, keep: int, device: torch.device):
        self.keep = keep
        self.values = torch.empty(units, 0, device=device)

    def update(self, act: torch.Tensor) -> None:
        flat = torch.nan_to_num(act.float(), nan=-torch.inf).transpose(0, 1).reshape(act.shape[1], -1)
        cat = torch.cat([self.values, flat], dim=1)
        self.values = cat.topk(min(self.keep, cat.shape[1]), dim=1).values if cat.shape[1] > self.keep else cat

    def thresholds(self) -> torch.Tensor:
        """The keep-th largest value of each unit (its top-quantile threshold)."""
        return self.values.min(dim=1).values


def values_to_keep(images: int, positions: int, quantile: float) -> int:
    return max(1, math.ceil(quantile * images * positions))


def one_hot(masks: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Id maps (B, kinds, H, W) -> concept masks (B, sum(sizes), H, W) bool."""
    parts = []
    for kind, n in enumerate(sizes):
        ids = masks[:, kind].long()
        parts.append(ids.unsqueeze(1) == torch.arange(n, device=masks.device).view(1, n, 1, 1))
    return torch.cat(parts, dim=1)


class IoUCounter:
    """Sums |A and M|, |A| and |M| over the data set for every (unit, concept)."""

    def __init__(self, thresholds: torch.Tensor, concepts: int):
        self.thr = thresholds.float()
        units = len(thresholds)
        dev = thresholds.device
        self.inter = torch.zeros(units, concepts, dtype=torch.float64, device=dev)
        self.act_area = torch.zeros(units, dtype=torch.float64, device=dev)
        self.mask_area = torch.zeros(concepts, dtype=torch.float64, device=dev)

    def update(self, act: torch.Tensor, concept_masks: torch.Tensor) -> None:
        """act (B, C, h, w); concept_masks (B, K, H, W) bool."""
        size = concept_masks.shape[-1]
        up = upsample(torch.nan_to_num(act.float(), nan=-torch.inf), size) if act.shape[-1] != size else act.float()
        a = (up > self.thr.view(1, -1, 1, 1)).flatten(2).float()          # (B, C, P)
        m = concept_masks.flatten(2).float()                               # (B, K, P)
        self.inter += torch.einsum("bcp,bkp->ck", a, m).double()
        self.act_area += a.sum(dim=(0, 2)).double()
        self.mask_area += m.sum(dim=(0, 2)).double()

    def iou(self) -> np.ndarray:
        union = self.act_area[:, None] + self.mask_area[None, :] - self.inter
        return torch.where(union > 0, self.inter / union.clamp_min(1), torch.zeros_like(union)).cpu().numpy()


def dissect(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], thresholds: torch.Tensor,
            sizes: list[int]) -> np.ndarray:
    """IoU (C, K) of every unit with every concept over (activations, id masks) batches."""
    counter = IoUCounter(thresholds, sum(sizes))
    for act, masks in batches:
        counter.update(act, one_hot(masks.to(act.device), sizes))
    return counter.iou()


def concept_labels(iou: np.ndarray, concept_names: list[str], min_iou: float) -> list[dict]:
    """Each unit's best concept; labelled only above `min_iou`. Names are 'kind:name'."""
    out = []
    for u in range(iou.shape[0]):
        best = int(np.argmax(iou[u])) if iou.shape[1] else -1
        score = float(iou[u, best]) if best >= 0 else 0.0
        kind, _, name = concept_names[best].partition(":") if best >= 0 else ("", "", "")
        hit = score > min_iou
        out.append({"unit": u, "label": name if hit else None, "category": kind if hit else None,
                    "concept": concept_names[best] if hit else None, "score": round(score, 6),
                    "best": concept_names[best] if best >= 0 else None, "method": "netdissect"})
    return out
