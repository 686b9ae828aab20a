"""The run: model and data -> stages that write artifacts -> the renderer.

`plan` lists the stages a config asks for, in dependency order; `run` executes them
(skipping the ones whose manifests are current) and renders the site from the artifacts.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Iterator, NoReturn

from atlas.config import Config, ConfigError
from atlas.context import Context
from atlas.stages import dataset, topk
from atlas.stages.base import Stage, run_stage
from atlas.stages.dataset import print_skipped
from atlas.artifacts import Run
from atlas.artifacts.dataset import skipped_lists
from atlas.artifacts.store import RunLockedError, RunStore, fault_point


def plan(ctx: Context) -> list:
    """Stage factories in order; each is called once the stages before it have finished,
    because a stage's parameters may depend on their outputs (e.g. the image count)."""
    from atlas.stages import registry
    return registry.factories(ctx)


def preflight(ctx: Context) -> None:
    """Every check that needs no compute, before the run folder is touched: the output
    path, the model, its weights, the layers, the device, the data and the files other
    stages will need. Each failure names the key or value and the valid choices."""
    cfg = ctx.cfg
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"'out' {cfg.out!r} exists and is not a folder")
    ctx.spec          # unknown model: lists the registered ones
    ctx.weights_id    # missing weight file
    ctx.layers        # unknown layer: lists the aliases (builds the model, loads the weights)
    ctx.device        # 'cuda' without a GPU
    ctx.raw_source    # missing data folder, no image files, unknown torchvision set
    if cfg.generator is not None and not Path(cfg.generator).is_file():
        raise ConfigError(f"'generator': weight file not found: {cfg.generator}")
    if cfg.maps:
        from atlas.stages.maps import map_layer
        map_layer(ctx)  # an unknown map_layer, or a model without a penultimate layer
    for layer in ctx.layers:
        ctx.units_of(layer)  # a unit past the layer's end


def run_stages(ctx: Context, factories) -> list[tuple[str, str, dict]]:
    """Call each stage factory in order, each once the stages before it have run, and run
    (or skip) the stages it makes. Returns (stage name, 'ran' | 'skipped', summary) per stage."""
    report = []
    for factory in factories:
        stages = factory(ctx)
        for stage in stages if isinstance(stages, list) else [stages]:
            status = run_stage(ctx, stage)
            report.append((stage.name, status, stage.summary))
            fault_point("run:after-stage")
    return report


def run(cfg: Config, rank: int = 0, world_size: int = 1, hand_off: str | None = None) -> Path:
    """Run every stage of `cfg` and render the site; returns the path of index.html.

    Under torchrun (world_size > 1) every rank calls this: sharded stages split their work,
    the others run on rank 0, and rank 0 holds the job's lock, merges, writes and renders.

    With `hand_off` (the `atlas` command sets it to its own name, `run` or `demo`, when this
    call is the whole process: not when `atlas.cli.main` is called with arguments), rank 0
    renders in a fresh image of its own process (`hand_off_render`: same process id, lock,
    output and exit status, but none of the memory that torch, the model and the map
    libraries hold), so the site's memory does not stack on the stages'; this call then
    does not return. The summary of the stages is printed before the site."""
    from atlas import distributed
    store = RunStore(cfg.out)
    t0 = time.time()
    ctx = Context(cfg, store, rank=rank, world_size=world_size,
                  device_override=distributed.local_device(cfg.device))
    preflight(ctx)  # every rank checks, before any joins the group or touches the folder
    distributed.init(world_size)
    with job_lock(store, rank, world_size) as lock_fd:
        try:
            if rank == 0:
                store.check_format()
                store.mark_format()
                store.write_config(cfg.resolved())
            report = run_stages(ctx, plan(ctx))
            fault_point("run:before-render")
            if hand_off and can_hand_off():
                distributed.barrier(world_size)  # every stage is done; the site is rank 0's alone
                if rank == 0:
                    store.finish_discards()
                    _print_summary(report, store, time.time() - t0)
                    distributed.shutdown()
                    hand_off_render(store.root, lock_fd, hand_off)
                return store.root / "site" / "index.html"
            index = render(store.root) if rank == 0 else store.root / "site" / "index.html"
            distributed.barrier(world_size)  # the others wait for the site, inside the job's lock
        finally:
            store.finish_discards()  # the finished stages' chunk folders, deleted in the background
    if rank == 0:
        _print_summary(report, store, time.time() - t0)
    return index


def can_hand_off() -> bool:
    """Whether this system can replace a process's image keeping its open lock (POSIX exec);
    ATLAS_RENDER_INLINE=1 keeps the render in the stages' process (for debugging)."""
    return os.name == "posix" and hasattr(os, "execv") and os.environ.get("ATLAS_RENDER_INLINE") != "1"


def hand_off_render(run_dir: Path, lock_fd: int | None, command: str = "run") -> NoReturn:
    """Replace this process's image with `atlas render RUN_DIR` (exec): the same process id,
    parent, output and signals, and the run lock carried over by its descriptor; torch, the
    model and the map libraries (about 1 GB resident before any image is paged) are gone,
    so the render's own memory (which grows with the paged images) starts from a bare
    interpreter. Its exit status is the job's. Called by rank 0 after every stage is done
    and every helper thread and worker has ended; `command` names the user's command in the
    render's error messages."""
    import atlas
    root = str(Path(atlas.__file__).resolve().parents[1])  # this very atlas, not another on the path
    argv = ["render", str(run_dir), "--shown-as", command]
    if lock_fd is not None:
        os.set_inheritable(lock_fd, True)
        argv += ["--held-lock", str(lock_fd)]
    code = (f"import sys\nif {root!r} not in sys.path: sys.path.insert(0, {root!r})\n"
            f"from atlas.__main__ import entry\nentry({argv!r})")
    import atexit
    atexit._run_exitfuncs()  # what an exit would do first: end multiprocessing's children, remove temporary folders
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", code])


@contextlib.contextmanager
def job_lock(store: RunStore, rank: int, world_size: int) -> Iterator[int | None]:
    """The run lock, held for the whole torchrun job by rank 0 (yields its descriptor there,
    None on the other ranks). Every rank learns whether rank 0 got it, so a locked folder
    stops all ranks with the same message (exit 2)."""
    from atlas import distributed
    if rank != 0:
        error = distributed.broadcast(None, world_size)
        if error:
            raise RunLockedError(error)
        yield None
        return
    with contextlib.ExitStack() as stack:
        try:
            fd = stack.enter_context(store.lock())
        except RunLockedError as exc:
            distributed.broadcast(str(exc), world_size)
            raise
        distributed.broadcast(None, world_size)
        yield fd


def _print_summary(report: list, store: RunStore, seconds: float) -> None:
    ran = [n for n, s, _ in report if s == "ran"]
    skipped = [n for n, s, _ in report if s == "skipped"]
    print(f"\nsummary: {len(ran)} stages computed, {len(skipped)} up to date "
          f"({seconds:.1f} s); artifacts in {store.root / 'stages'}")
    for name, status, summary in report:
        if status == "ran":
            info = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "seconds")
            print(f"  {name}: {info} ({summary.get('seconds', 0):.1f} s)")
    bad_files = Run(store.root).dataset.skipped
    if bad_files:
        print_skipped(bad_files)
        print(f"  (listed in {' and '.join(str(p) for p in skipped_lists(store))}, and on the home page)")


def render(run_dir: str | Path) -> Path:
    from atlas.render.build import build_site
    return build_site(Path(run_dir))


__all__ = ["plan", "preflight", "run", "render", "hand_off_render", "Stage", "dataset", "topk"]
