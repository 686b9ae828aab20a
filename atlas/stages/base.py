"""A stage is a function of (config, inputs) with a version; the runner skips current ones."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from atlas.distributed import barrier
from atlas.memory import give_back_memory, peak_rss_mib, rss_now_mib
from atlas.artifacts.store import stage_key


@dataclass
class Stage:
    """`fn(ctx, out_dir, key)` writes the stage's files into out_dir and returns a summary."""
    name: str
    version: int
    params: dict
    fn: Callable
    deps: tuple[str, ...] = ()
    sharded: bool = False  # every rank runs fn (sharing work through chunks); else rank 0 alone
    summary: dict = field(default_factory=dict)

    def key(self, ctx) -> str:
        inputs = {}
        for dep in self.deps:
            k = ctx.store.key(dep)
            if k is None:
                raise RuntimeError(f"stage {self.name!r} needs {dep!r}, which has not finished")
            inputs[dep] = k
        return stage_key(self.name, self.version, self.params, inputs)


def run_stage(ctx, stage: Stage) -> str:
    """Run `stage` unless its outputs are current. Returns 'ran' or 'skipped'.

    With several ranks, a sharded stage runs on every rank, each computing its share of
    the chunks (artifacts/chunks.py), and rank 0 merges them into the output; any other stage
    runs on rank 0 while the others wait. Rank 0 decides whether the stage is current, so
    every rank takes the same path through the same barriers."""
    from atlas.distributed import broadcast
    key = stage.key(ctx)
    current = broadcast(ctx.store.is_current(stage.name, key) if ctx.rank == 0 else None, ctx.world_size)
    if current:
        if ctx.rank == 0:
            print(f"[{stage.name}] up to date, skipped", flush=True)
        return "skipped"
    t0 = time.time()
    ctx.work = {}
    if ctx.rank == 0:
        print(f"[{stage.name}] running", flush=True)
        with ctx.store.writing(stage.name, key, {"version": stage.version, "params": stage.params,
                                                  "deps": list(stage.deps)}) as out:
            summary = stage.fn(ctx, Path(out), key) or {}
            if ctx.work:
                summary["work"] = ctx.work
            stage.summary = {**summary, "seconds": round(time.time() - t0, 2)}
            ctx.store.write_summary(out, stage.summary)
        give_back_memory()
        now = rss_now_mib()
        print(f"[{stage.name}] done in {time.time() - t0:.1f} s (peak RSS so far {peak_rss_mib():.0f} MiB)"
              + ("" if now is None else f", {now:.0f} MiB now"), flush=True)
    elif stage.sharded:
        with tempfile.TemporaryDirectory() as scratch:
            stage.fn(ctx, Path(scratch), key)
        give_back_memory()
    ctx.work = {}
    barrier(ctx.world_size)
    return "ran"

