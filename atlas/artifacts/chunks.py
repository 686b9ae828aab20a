"""One chunked, resumable runner for work split by units or by images, shared by ranks.

A stage whose cost grows with units or images cuts its items (units of a layer, images
of the data set) into fixed chunks of consecutive items. The chunks depend only on the
item count and the stage's chunk size, never on the number of processes, so one process
and N processes compute identical pieces and merge them in the same order.

Each finished chunk is a folder `<tag>-<start>-<stop>/` in the stage's partial folder,
built under a temporary name and renamed into place: a chunk folder that exists is
complete. It holds what `compute` wrote (files, or `arrays.npz` when `compute` returns
arrays) and `done.json` (which rank computed it, how many items, how long it took).

Two ways to use it. `run_chunks` keeps every chunk's result (arrays or files) and returns
them all, for rank 0 to merge in chunk order. `fold_chunks` is for a pass whose result is a
running state of bounded size (the top-k pass: top-k lists and streamed statistics): the
chunks form a few fixed groups, each folded in order into one state saved after every
chunk, and rank 0 merges the groups' states in group order.

`run_chunks` is called by every rank of a torchrun job at the same point: all ranks list
the missing chunks after a barrier (so they agree), deal them out round-robin (chunks are
equal, so that is balanced), compute their own, wait for each other and return every
chunk. After a kill, a rerun finds the finished chunks and deals out only the missing
ones, whichever rank had them before. The record of who computed how many items goes to
`ctx.work`, which `stages.base.run_stage` puts in the stage's summary. `run_passes` does the
same for several passes of one stage at once (one listing, deal and wait for all), and a
stage with a few unlike jobs may deal them by their estimated cost (`deal_by_cost`).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from atlas.distributed import barrier, gather
from atlas.artifacts.store import fault_point, make_durable

ARRAYS = "arrays.npz"
DONE = "done.json"
MIN_CHUNKS = 8  # at least this many chunks when there are enough items, so ranks can share
FOLD_GROUPS = 16  # fold_chunks: the most groups (states kept on disk; ranks beyond it idle)


@dataclass(frozen=True)
class Chunk:
    """Items [start, stop) of a stage's work and the folder that holds their result."""
    start: int
    stop: int
    path: Path

    @property
    def items(self) -> int:
        return self.stop - self.start

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays `compute` returned for this chunk, loaded."""
        with np.load(self.path / ARRAYS) as z:
            return {name: z[name] for name in z.files}

    def record(self) -> dict:
        with open(self.path / DONE, encoding="utf-8") as f:
            return json.load(f)


def chunk_size(n: int, most: int, min_chunks: int = MIN_CHUNKS) -> int:
    """Items per chunk: at most `most` (what fits one batch), and small enough that `n`
    items make at least `min_chunks` chunks, so every rank of a job gets a share. Depends on
    `n` and `most` only: the same for any number of processes."""
    return max(1, min(most, -(-n // min_chunks)))


def split(n: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) of consecutive chunks of `size` items covering n items."""
    return [(s, min(n, s + size)) for s in range(0, n, max(1, size))]


def chunk_dir(folder: Path, tag: str, start: int, stop: int) -> Path:
    return folder / f"{tag}-{start:07d}-{stop:07d}"


def _clean_temporary(folder: Path) -> None:
    """Remove chunk folders a killed process left half-written (rank 0, before sharing)."""
    for p in folder.glob(".*.tmp"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _save(final: Path, rank: int, items: int, compute: Callable, start: int, stop: int) -> None:
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    t0 = time.time()
    try:
        arrays = compute(start, stop, tmp)
        if arrays is not None:
            with open(tmp / ARRAYS, "wb") as f:
                np.savez(f, **arrays)
        with open(tmp / DONE, "w", encoding="utf-8") as f:
            json.dump({"rank": rank, "items": items, "seconds": round(time.time() - t0, 3)}, f)
        make_durable(tmp, [p for p in tmp.rglob("*") if p.is_file()])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(final)


def run_chunks(ctx, name: str, key: str, n: int, size: int,
               compute: Callable[[int, int, Path], dict[str, np.ndarray] | None],
               tag: str = "chunk", items: str = "units", threads: int = 1,
               deal: Callable[[list[Chunk], int], list[int]] | None = None) -> list[Chunk]:
    """Compute this rank's share of the missing chunks of items [0, n), then return all chunks.

    `compute(start, stop, folder)` works items [start, stop) and either writes files into
    `folder` or returns arrays (saved as `arrays.npz`). Every rank must call this with the
    same arguments (it holds barriers). `tag` tells apart several chunked passes of one
    stage; `items` ('units', 'images', or 'jobs' for a few unlike tasks) names what is
    counted in the work record. `threads` > 1 computes up to that many of this rank's chunks
    at once, in threads (for single-threaded libraries that leave cores idle). `deal`: see
    `run_passes`. Rank 0 checks that every chunk is there and records the work; another rank
    may read the chunks returned only before a later collective call of the same stage (rank
    0 moves the stage's partial folder away once the stage is in place)."""
    return run_passes(ctx, name, key, [Pass(tag, n, size, compute, items)], threads, deal)[0]


def deal_by_cost(costs: list[float], needs: list[tuple[str, ...]], setup: dict[str, float],
                 world_size: int) -> list[int]:
    """The rank of each of a few unlike jobs, so that the ranks finish together: longest job
    first, each to the rank where it would end soonest, counting the one-time `setup` cost
    (seconds, e.g. a library's import) of each of its `needs` that rank has not paid yet (so
    jobs that share a library tend to share a rank). Ties go to the higher rank, since rank 0
    merges after the pass. Deterministic: every rank computes the same deal."""
    load = [0.0] * world_size
    paid: list[set[str]] = [set() for _ in range(world_size)]
    owner = [0] * len(costs)
    for j in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        def end(r: int) -> float:
            return load[r] + costs[j] + sum(setup[n] for n in needs[j] if n not in paid[r])
        r = min(range(world_size), key=lambda r: (end(r), -r))
        load[r], owner[j] = end(r), r
        paid[r].update(needs[j])
    return owner


@dataclass(frozen=True)
class Pass:
    """One chunked pass of a stage for `run_passes`: items [0, n) in chunks of `size`, each
    computed by `compute(start, stop, folder)`, recorded under `tag` as `items`."""
    tag: str
    n: int
    size: int
    compute: Callable[[int, int, Path], dict[str, np.ndarray] | None]
    items: str = "units"


def run_passes(ctx, name: str, key: str, passes: list[Pass], threads: int = 1,
               deal: Callable[[list[Chunk], int], list[int]] | None = None) -> list[list[Chunk]]:
    """`run_chunks` for several independent passes of one stage at once (feature
    visualization: one pass per prior): one listing and one deal of all their missing
    chunks (pass by pass, round-robin over the whole list), each rank computes its chunks
    in that order, and one wait for the others at the end. Returns each pass's chunks.

    Why not one `run_chunks` per pass: every pass ends with every rank waiting for the
    slowest, so a stage of P passes waited P times, and the ranks' differences in each
    pass (noise, a first call) added up instead of evening out over the stage (the quick
    demo's feature visualization: 24 passes, 0.7-1.0 s of waiting on each of two ranks at
    load 2-4). The chunks, their folders and the work record per tag are those of one
    `run_chunks` per pass; with an even number of missing chunks in every pass, so is the deal.

    `deal(missing, world_size)`, when given, names the rank of each missing chunk instead
    of the round-robin (for unlike jobs whose costs are known, `deal_by_cost`); it must
    give every rank the same answer."""
    folder = ctx.store.partial_dir(name, key)
    if ctx.rank == 0:
        _clean_temporary(folder)
    barrier(ctx.world_size)  # every rank lists the same finished chunks
    listed = [[Chunk(s, e, chunk_dir(folder, p.tag, s, e)) for s, e in split(p.n, p.size)] for p in passes]
    missing = [[c for c in chunks if not (c.path / DONE).is_file()] for chunks in listed]
    held, left = sum(len(c) for c in listed), sum(len(m) for m in missing)
    if left < held and ctx.rank == 0:
        print(f"[{name}] resuming: {held - left} of {held} chunks already computed", flush=True)
    work = [(p, c) for p, m in zip(passes, missing) for c in m]
    if deal is None:
        mine = work[ctx.rank::ctx.world_size]
    else:
        owners = deal([c for _, c in work], ctx.world_size)
        mine = [w for w, owner in zip(work, owners) if owner == ctx.rank]
    if threads > 1 and len(mine) > 1:
        with ThreadPoolExecutor(min(threads, len(mine))) as pool:
            jobs = [pool.submit(_save, c.path, ctx.rank, c.items, p.compute, c.start, c.stop) for p, c in mine]
            for job in jobs:
                job.result()
                fault_point("chunks:chunk")
    else:
        for p, c in mine:
            _save(c.path, ctx.rank, c.items, p.compute, c.start, c.stop)
            fault_point("chunks:chunk")
    barrier(ctx.world_size)
    if ctx.rank != 0:
        # only rank 0 checks and records: it may be merging already and, once the stage is in
        # place, moves this folder away (a rank that looked in it late found every chunk missing)
        return listed
    absent = [c.path.name for chunks in listed for c in chunks if not (c.path / DONE).is_file()]
    if absent:
        raise RuntimeError(f"[{name}] chunks missing after all ranks finished: {', '.join(absent[:5])}")
    for p, chunks, m in zip(passes, listed, missing):
        _record(ctx, p.tag, p.items, chunks, m)
    return listed


def _record(ctx, tag: str, items: str, chunks: list[Chunk], missing: list[Chunk]) -> None:
    """Add to ctx.work[tag]: items computed by each rank in this run, and items resumed."""
    per_rank = [0] * ctx.world_size
    for c in missing:
        r = c.record()["rank"]
        if 0 <= r < len(per_rank):
            per_rank[r] += c.items
    _add_work(ctx, tag, items, len(chunks), per_rank,
              sum(c.items for c in chunks) - sum(c.items for c in missing))


def _add_work(ctx, tag: str, items: str, n_chunks: int, per_rank: list[int], resumed: int) -> None:
    done = ctx.work.setdefault(tag, {"items": items, "chunks": 0, "per_rank": [0] * ctx.world_size,
                                     "resumed": 0})
    done["chunks"] += n_chunks
    done["per_rank"] = [a + b for a, b in zip(done["per_rank"], per_rank)]
    done["resumed"] += resumed


def state_path(folder: Path, group: int) -> Path:
    """The folded state of one group of chunks."""
    return folder / f"group-{group:04d}.npz"


def save_state(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


def fold_chunks(ctx, name: str, key: str, n: int, size: int, new_state: Callable[[], object],
                fold: Callable[[object, int, int], None], items: str = "images") -> list[Path]:
    """Fold chunks of items [0, n) into running states, one state per group of consecutive
    chunks; returns the groups' state files in order, for rank 0 to merge in that order.

    The groups (at most FOLD_GROUPS, of equal numbers of chunks) depend only on n and size,
    so one process and N processes fold and merge the same pieces in the same order (a
    running mean is the same bits either way). Unfinished groups are dealt out round-robin;
    a group's state is saved after each of its chunks (memory and disk: one state per group,
    never one per chunk), so a killed pass resumes at its last chunk, with any number of ranks.

    `new_state()` makes an empty state with `chunks` (the chunk indices folded in, a list),
    `arrays()` and `restore(npz, device)`; `fold(state, start, stop)` adds items [start, stop)."""
    folder = ctx.store.partial_dir(name, key)
    if ctx.rank == 0:
        _clean_temporary(folder)
    spans = split(n, size)
    groups = split(len(spans), chunk_size(len(spans), len(spans), FOLD_GROUPS))
    barrier(ctx.world_size)  # every rank sees the same saved states

    def saved(g: int) -> list[int]:
        path = state_path(folder, g)
        if not path.is_file():
            return []
        with np.load(path) as z:
            return [int(i) for i in z["chunks"]]

    progress = [saved(g) for g in range(len(groups))]
    already = sum(len(p) for p in progress)
    if already and ctx.rank == 0:
        print(f"[{name}] resuming: {already} of {len(spans)} chunks already computed", flush=True)
    open_groups = [g for g, (c0, c1) in enumerate(groups) if progress[g] != list(range(c0, c1))]
    computed = resumed = 0
    for g in open_groups[ctx.rank::ctx.world_size]:
        state = new_state()
        if progress[g]:
            with np.load(state_path(folder, g)) as z:
                state.restore(z, ctx.device)
        for i in range(*groups[g]):
            if i in state.chunks:
                resumed += spans[i][1] - spans[i][0]
                continue
            fold(state, *spans[i])
            state.chunks.append(i)
            save_state(state_path(folder, g), state.arrays())
            computed += spans[i][1] - spans[i][0]
            fault_point("chunks:chunk")
    counts = gather([computed, resumed], ctx.world_size)  # also a barrier
    paths = [state_path(folder, g) for g in range(len(groups))]
    if ctx.rank != 0:  # only rank 0 checks (see run_passes: it may have moved the folder away)
        return paths
    missing = [paths[g].name for g, (c0, c1) in enumerate(groups) if saved(g) != list(range(c0, c1))]
    if missing:
        raise RuntimeError(f"[{name}] chunks missing after all ranks finished: {', '.join(missing[:5])}")
    done_before = sum(spans[i][1] - spans[i][0] for g in range(len(groups)) if g not in open_groups
                      for i in range(*groups[g]))
    _add_work(ctx, "chunk", items, len(spans), [c[0] for c in counts], sum(c[1] for c in counts) + done_before)
    return paths
