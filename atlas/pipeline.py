"""The run: model and data -> stages that write artifacts -> the renderer.

`plan` lists the stages a config asks for, in dependency order; `run` executes them
(skipping the ones whose manifests are current) and renders the site from the artifacts.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from atlas.config import Config
from atlas.context import Context
from atlas.stages import dataset, topk
from atlas.stages.base import Stage, run_stage
from atlas.stages.store import RunStore, write_json


def plan(ctx: Context) -> list:
    """Stage factories in order; each is called once the stages before it have finished,
    because a stage's parameters may depend on their outputs (e.g. the image count)."""
    from atlas.stages import registry
    return registry.factories(ctx)


def run(cfg: Config, rank: int = 0, world_size: int = 1) -> Path:
    """Run every stage of `cfg` and render the site; returns the path of index.html.

    Under torchrun (world_size > 1) every rank calls this: sharded stages split their work,
    the others run on rank 0, and rank 0 alone holds the lock, writes and renders."""
    from atlas import distributed
    store = RunStore(cfg.out)
    t0 = time.time()
    distributed.init(world_size)
    lock = store.lock() if rank == 0 else contextlib.nullcontext()
    with lock:
        ctx = Context(cfg, store, rank=rank, world_size=world_size,
                      device_override=distributed.local_device(cfg.device))
        ctx.layers  # fail on unknown layers before any compute
        if rank == 0:
            write_json(store.root / "config.json", cfg.resolved())
        report = []
        for factory in plan(ctx):
            stages = factory(ctx)
            for stage in stages if isinstance(stages, list) else [stages]:
                status = run_stage(ctx, stage)
                report.append((stage.name, status, stage.summary))
        index = render(store.root) if rank == 0 else store.root / "site" / "index.html"
    distributed.barrier(world_size)
    if rank == 0:
        _print_summary(report, store, time.time() - t0)
    return index


def _print_summary(report: list, store: RunStore, seconds: float) -> None:
    ran = [n for n, s, _ in report if s == "ran"]
    skipped = [n for n, s, _ in report if s == "skipped"]
    print(f"\nsummary: {len(ran)} stages computed, {len(skipped)} up to date "
          f"({seconds:.1f} s); artifacts in {store.stages_dir}")
    for name, status, summary in report:
        if status == "ran":
            info = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "seconds")
            print(f"  {name}: {info} ({summary.get('seconds', 0):.1f} s)")


def render(run_dir: str | Path) -> Path:
    from atlas.render.build import build_site
    return build_site(Path(run_dir))


__all__ = ["plan", "run", "render", "Stage", "dataset", "topk"]
