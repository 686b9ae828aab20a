"""The run: model and data -> stages that write artifacts -> the renderer.

`plan` lists the stages a config asks for, in dependency order; `run` executes them
(skipping the ones whose manifests are current) and renders the site from the artifacts.
"""
from __future__ import annotations

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
    """Run every stage of `cfg` and render the site; returns the path of index.html."""
    store = RunStore(cfg.out)
    t0 = time.time()
    with store.lock():
        ctx = Context(cfg, store, rank=rank, world_size=world_size)
        ctx.layers  # fail on unknown layers before any compute
        write_json(store.root / "config.json", cfg.resolved())
        report = []
        for factory in plan(ctx):
            stages = factory(ctx)
            for stage in stages if isinstance(stages, list) else [stages]:
                status = run_stage(ctx, stage)
                report.append((stage.name, status, stage.summary))
        index = render(store.root)
    ran = [n for n, s, _ in report if s == "ran"]
    skipped = [n for n, s, _ in report if s == "skipped"]
    print(f"\nsummary: {len(ran)} stages computed, {len(skipped)} up to date "
          f"({time.time() - t0:.1f} s); artifacts in {store.stages_dir}")
    for name, status, summary in report:
        if status == "ran":
            info = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "seconds")
            print(f"  {name}: {info} ({summary.get('seconds', 0):.1f} s)")
    return index


def render(run_dir: str | Path) -> Path:
    from atlas.render.build import build_site
    return build_site(Path(run_dir))


__all__ = ["plan", "run", "render", "Stage", "dataset", "topk"]
