"""A stage is a function of (config, inputs) with a version; the runner skips current ones."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from atlas.distributed import barrier
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

    With several ranks, a sharded stage runs on every rank (rank 0 keeps the output); any
    other stage runs on rank 0 while the others wait."""
    key = stage.key(ctx)
    if ctx.store.is_current(stage.name, key):
        if ctx.rank == 0:
            print(f"[{stage.name}] up to date, skipped", flush=True)
        return "skipped"
    t0 = time.time()
    if ctx.rank == 0:
        print(f"[{stage.name}] running", flush=True)
        with ctx.store.writing(stage.name, key, {"version": stage.version, "params": stage.params,
                                                  "deps": list(stage.deps)}) as out:
            summary = stage.fn(ctx, Path(out), key) or {}
            stage.summary = {**summary, "seconds": round(time.time() - t0, 2)}
            ctx.store.write_summary(out, stage.summary)
        print(f"[{stage.name}] done in {time.time() - t0:.1f} s", flush=True)
    elif stage.sharded:
        with tempfile.TemporaryDirectory() as scratch:
            stage.fn(ctx, Path(scratch), key)
    barrier(ctx.world_size)
    return "ran"

