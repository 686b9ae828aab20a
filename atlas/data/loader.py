"""From a source to batches of model input: preprocessing and a DataLoader."""
from __future__ import annotations

import ctypes
import signal
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2 as T

from atlas.data.sources import DataError, Source
from atlas.models.spec import ModelSpec


def _interpolation(spec: ModelSpec) -> T.InterpolationMode:
    return T.InterpolationMode(getattr(spec, "interpolation", "bilinear"))


def model_transform(spec: ModelSpec) -> T.Compose:
    """The spec's preprocessing: resize (its filter), center crop, scale to [0,1], normalize."""
    steps: list = [T.PILToTensor()]
    mode = _interpolation(spec)
    if spec.resize:
        steps.append(T.Resize(spec.resize, interpolation=mode, antialias=True))
    steps += [T.Resize(spec.input_size, interpolation=mode, antialias=True) if not spec.resize else T.Identity(),
              T.CenterCrop(spec.input_size), T.ToDtype(torch.float32, scale=True),
              T.Normalize(spec.mean, spec.std)]
    return T.Compose(steps)


def display_transform(spec: ModelSpec) -> T.Compose:
    """What the model sees, as uint8 CHW (for crops, heatmaps and thumbnails)."""
    steps: list = [T.PILToTensor()]
    steps.append(T.Resize(spec.resize or spec.input_size, interpolation=_interpolation(spec), antialias=True))
    steps.append(T.CenterCrop(spec.input_size))
    return T.Compose(steps)


class SourceDataset(Dataset):
    """(tensor, id) pairs for the ids given (default: all)."""

    def __init__(self, source: Source, transform, ids: np.ndarray | None = None):
        self.source, self.transform = source, transform
        self.ids = np.arange(len(source)) if ids is None else np.asarray(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        idx = int(self.ids[i])
        return self.transform(self.source.load(idx)), idx


class CheckedDataset(SourceDataset):
    """(tensor or None, id, reason) triples: an image that cannot be decoded gives None and
    its reason instead of stopping the loader, so the first decode also checks it."""

    def __getitem__(self, i: int):
        idx = int(self.ids[i])
        try:
            return self.transform(self.source.load(idx)), idx, ""
        except DataError as exc:
            return None, idx, str(exc) or "cannot decode"


def collate_checked(batch: list) -> tuple[torch.Tensor | None, torch.Tensor, list[tuple[int, str]]]:
    """A batch of CheckedDataset items -> (stacked good images or None, their ids,
    [(id, reason)] of the bad ones), in id order."""
    good = [(x, i) for x, i, why in batch if not why]
    bad = [(i, why) for _, i, why in batch if why]
    x = torch.stack([g[0] for g in good]) if good else None
    return x, torch.tensor([g[1] for g in good], dtype=torch.long), bad


def die_with_parent(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: a worker is killed when the process that started it dies.

    A run killed with SIGKILL (an out-of-memory kill, a cluster's preemption) cannot stop its
    workers; one blocked on a full result queue would otherwise live on, holding the run's
    output pipe open. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


MIN_IMAGES_PER_WORKER = 128  # a worker process costs about 0.3-0.6 s to start (a fork of a large process)


def useful_workers(count: int, workers: int) -> int:
    """The worker processes worth starting for a pass over `count` images: at most `workers`,
    and none for fewer than MIN_IMAGES_PER_WORKER images each. Chunked passes (a few dozen
    images a chunk in small runs) would otherwise spend more time starting workers than
    decoding; the images and their order are the same either way."""
    return max(0, min(workers, count // MIN_IMAGES_PER_WORKER))


def _loader(dataset: SourceDataset, batch_size: int, workers: int, pin_memory: bool,
            collate_fn=None) -> DataLoader:
    """The one DataLoader set-up: in order, workers only where useful, dying with their parent."""
    workers = useful_workers(len(dataset), workers)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                      collate_fn=collate_fn, worker_init_fn=die_with_parent if workers > 0 else None,
                      persistent_workers=False, prefetch_factor=4 if workers > 0 else None)


def make_loader(source: Source, transform, batch_size: int, workers: int,
                ids: np.ndarray | None = None, pin_memory: bool = False) -> DataLoader:
    return _loader(SourceDataset(source, transform, ids), batch_size, workers, pin_memory)


def make_checked_loader(source: Source, transform, batch_size: int, workers: int,
                        ids: np.ndarray | None = None, pin_memory: bool = False) -> DataLoader:
    """Like make_loader, yielding (images or None, ids, [(id, reason)]): the images that
    decode and, with their reasons, the ones that do not (collate_checked)."""
    return _loader(CheckedDataset(source, transform, ids), batch_size, workers, pin_memory, collate_checked)


def to_display(spec: ModelSpec, tensor: torch.Tensor) -> np.ndarray:
    """Undo normalization: model-input tensors (N,3,H,W) -> uint8 images (N,H,W,3)."""
    mean = torch.tensor(spec.mean, device=tensor.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=tensor.device).view(1, 3, 1, 1)
    x = (tensor.detach().float() * std + mean).clamp(0, 1) * 255
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
