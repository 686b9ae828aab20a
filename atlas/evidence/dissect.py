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


def concept_onehot(masks: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Id maps (B, kinds, H, W), -1 for none -> concept indicators (B, H*W, K + 1) float; the
    last column is all ones (so one product also counts each unit's active pixels)."""
    b, kinds = masks.shape[:2]
    ids = masks.reshape(b, kinds, -1).long()
    out = torch.zeros(b, ids.shape[-1], sum(sizes) + 1)
    out[..., -1] = 1
    offset = 0
    for kind, n in enumerate(sizes):
        present = ids[:, kind] >= 0
        idx = torch.where(present, ids[:, kind] + offset, torch.zeros_like(ids[:, kind]))
        out.scatter_add_(2, idx.unsqueeze(-1), present.unsqueeze(-1).float())
        offset += n
    return out


class IoUCounter:
    """Sums |A and M| and |A| over the data set for every (unit, concept) of one layer.

    Intersections are one batched matrix product of the thresholded maps (B, C, P) with
    the concept indicators (B, P, K)."""

    def __init__(self, thresholds: torch.Tensor, concepts: int):
        self.thr = thresholds.float()
        units, dev = len(thresholds), thresholds.device
        self.inter = torch.zeros(units, concepts, dtype=torch.float64, device=dev)
        self.act_area = torch.zeros(units, dtype=torch.float64, device=dev)

    def update(self, act: torch.Tensor, onehot: torch.Tensor) -> None:
        """act (B, C, h, w); onehot: `concept_onehot` of the batch's (square) masks.
        NaN activations never pass the threshold."""
        size = math.isqrt(onehot.shape[1])
        act = act.float()
        up = upsample(act, size) if act.shape[-2:] != (size, size) else act
        a = (up > self.thr.view(1, -1, 1, 1)).flatten(2).float()            # (B, C, P)
        counts = torch.bmm(a, onehot.to(a.device)).sum(dim=0).double()      # (C, K + 1)
        self.inter += counts[:, :-1]
        self.act_area += counts[:, -1]

    def iou(self, mask_area: torch.Tensor) -> np.ndarray:
        union = self.act_area[:, None] + mask_area.to(self.inter.device)[None, :] - self.inter
        return torch.where(union > 0, self.inter / union.clamp_min(1), torch.zeros_like(union)).cpu().numpy()


def dissect(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], thresholds: torch.Tensor,
            sizes: list[int]) -> np.ndarray:
    """IoU (C, K) of every unit with every concept over (activations, id masks) batches."""
    counter = IoUCounter(thresholds, sum(sizes))
    area = torch.zeros(sum(sizes), dtype=torch.float64)
    for act, masks in batches:
        onehot = concept_onehot(masks, sizes)
        counter.update(act, onehot)
        area += onehot[..., :-1].sum(dim=(0, 1)).double()
    return counter.iou(area)


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
