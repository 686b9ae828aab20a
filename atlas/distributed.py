"""torch.distributed glue for `torchrun ... -m atlas run|demo`: rank, barrier, broadcast,
device per rank.

Stages whose cost grows with units or images split their work into fixed chunks
(independent of the number of processes, `atlas/artifacts/chunks.py`); every rank computes
its share, writes each chunk as a file, and rank 0 merges. Everything else runs on rank 0
while the others wait. The run folder must be visible to every rank (one machine, or
shared storage across machines).
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of processes, from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(world_size: int) -> None:
    """Join the process group (gloo on CPU, NCCL on GPUs) when there is more than one rank."""
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("ATLAS_DIST_BACKEND") != "gloo" else "gloo"
        if backend == "nccl" and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # object broadcasts go through it
        # what runs on rank 0 alone (merges, the site) while the others wait may take hours: allow them
        dist.init_process_group(backend=backend, timeout=timedelta(hours=12))


def active(world_size: int) -> bool:
    return world_size > 1 and dist.is_initialized()


def barrier(world_size: int) -> None:
    if active(world_size):
        dist.barrier()


def broadcast(value: Any, world_size: int) -> Any:
    """Rank 0's `value` on every rank (a small picklable object), so that all ranks take
    the same decision (skip a stage, give up on a locked folder)."""
    if not active(world_size):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, world_size: int) -> list:
    """Every rank's `value` (a small picklable object), in rank order, on every rank; also
    a barrier."""
    if not active(world_size):
        return [value]
    out: list = [None] * world_size
    dist.all_gather_object(out, value)
    return out


def local_device(name: str) -> torch.device | None:
    """cuda:LOCAL_RANK for multi-GPU runs; None to keep the configured device."""
    if name in ("auto", "cuda") and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.backends.cudnn.benchmark = True  # as context.pick_device does on a GPU
        return torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
    return None


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
