"""Code statistics over real images: per-component mean, std and the DGN-AM bound mean + 3 std."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from atlas.models.layers import extractor
from atlas.models.spec import ModelSpec
from atlas.priors.genfile import CodeStats


@torch.no_grad()
def codes_of(model: nn.Module, node: str, batches, device: torch.device | str = "cpu") -> torch.Tensor:
    """Concatenated codes (N, D) of `node` for an iterable of model-input batches."""
    net = extractor(model, [node]).to(device).eval()
    return torch.cat([net(x.to(device))[node].flatten(1).float().cpu() for x in batches])


def stats_from_images(model: nn.Module, spec: ModelSpec, node: str, folder: str, limit: int = 2000,
                      batch_size: int = 64) -> CodeStats:
    """Statistics of `node` over up to `limit` images of a folder, preprocessed as the model wants."""
    from atlas.data.loader import make_loader, model_transform
    from atlas.data.sources import FolderSource
    src = FolderSource(folder, limit=limit)
    loader = make_loader(src, model_transform(spec), batch_size, workers=0, ids=np.arange(len(src)))
    codes = codes_of(model, node, (x for x, _ in loader))
    return CodeStats.from_codes(codes, source=f"{spec.name}:{node} over {len(src)} images of {folder}")
