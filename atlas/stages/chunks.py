"""Work split into fixed chunks: resumable after interruption, shared out across ranks.

A chunk's result is one .npz file written atomically in the stage's partial folder, so a
chunk that exists is complete. Chunks are the same whatever the number of processes, so
one process and N processes compute identical pieces.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from atlas.artifacts.store import save_chunk
from atlas.distributed import barrier


def chunk_path(folder: Path, i: int) -> Path:
    return folder / f"chunk-{i:05d}.npz"


def run_chunks(ctx, name: str, key: str, n_chunks: int,
               compute: Callable[[int], dict[str, np.ndarray]]) -> list[Path]:
    """Compute this rank's missing chunks, wait for every rank, return all chunk paths."""
    folder = ctx.store.partial_dir(name, key)
    mine = [i for i in range(n_chunks) if i % ctx.world_size == ctx.rank]
    done = [i for i in mine if chunk_path(folder, i).is_file()]
    if done and ctx.rank == 0:
        print(f"[{name}] resuming: {len(done)} of {n_chunks} chunks already computed", flush=True)
    for i in mine:
        path = chunk_path(folder, i)
        if not path.is_file():
            save_chunk(path, compute(i))
    barrier(ctx.world_size)
    paths = [chunk_path(folder, i) for i in range(n_chunks)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"[{name}] chunks missing after all ranks finished: {', '.join(missing[:5])}")
    return paths
