"""Images for the evidence passes: display pixels (what the model sees, as uint8) and the
matching model input, loaded through the source with the model's geometric preprocessing
(DataLoader workers). Only the images a pass needs are decoded (top images, the map sample)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from atlas.data.loader import display_transform, make_loader
from atlas.models.spec import ModelSpec


def display_batches(ctx, ids: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(ids, uint8 images (B, 3, S, S) at the model's input size S), in the order of `ids`."""
    ids = np.asarray(ids, dtype=np.int64)
    loader = make_loader(ctx.source, display_transform(ctx.spec), batch_size, ctx.cfg.workers, ids=ids)
    for x, part in loader:
        yield part.numpy(), x


def model_input(spec: ModelSpec, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, S, S) display images -> the normalized float input the model expects
    (identical to the loader's `model_transform`, whose geometry display images already have)."""
    x = images.to(device, non_blocking=True).float().div_(255)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std
