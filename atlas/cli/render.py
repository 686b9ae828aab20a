"""`atlas render RUN_DIR`: re-render the site from a run's stored artifacts."""
from __future__ import annotations

import argparse
from pathlib import Path

from atlas.cli.common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="re-render the site from a run's stored artifacts",
                       description="Render RUN_DIR/site from the artifacts in RUN_DIR/stages only.")
    p.add_argument("run_dir")
    # internal: `atlas run` and `atlas demo` hand their lock and their name to the render they exec
    p.add_argument("--held-lock", type=int, dest="held_lock", help=argparse.SUPPRESS)
    p.add_argument("--shown-as", dest="shown_as", choices=["run", "demo"], help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from atlas.artifacts.store import RunStore
    from atlas.render.build import build_site
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    store = RunStore(run_dir)
    held = store.adopt_lock(args.held_lock) if args.held_lock is not None else store.lock()
    with held:  # not while a run is writing the same folder
        index = build_site(run_dir)
    print(index.resolve())
    return 0
