"""torch.distributed glue for `torchrun ... -m atlas run`: rank, barrier, device per rank.

Work is split into fixed chunks (independent of the number of processes); rank r does the
chunks i with i % world_size == r, writes each as a file, and rank 0 merges. The output
folder must be visible to every rank (one machine, or shared storage across machines).
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of processes, from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(world_size: int) -> None:
    """Join the process group (gloo on CPU, NCCL on GPUs) when there is more than one rank."""
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("ATLAS_DIST_BACKEND") != "gloo" else "gloo"
        # non-sharded stages (t-SNE, site) run on rank 0 while the others wait: allow hours
        dist.init_process_group(backend=backend, timeout=timedelta(hours=12))


def barrier(world_size: int) -> None:
    if world_size > 1 and dist.is_initialized():
        dist.barrier()


def local_device(name: str) -> torch.device | None:
    """cuda:LOCAL_RANK for multi-GPU runs; None to keep the configured device."""
    if name in ("auto", "cuda") and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
    return None


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
