"""`atlas render RUN_DIR`: re-render the site from a run's stored artifacts."""
from __future__ import annotations

import argparse
from pathlib import Path

from atlas.cli.common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="re-render the site from a run's stored artifacts",
                       description="Render RUN_DIR/site from the artifacts in RUN_DIR/stages only.")
    p.add_argument("run_dir")


def run(args: argparse.Namespace) -> int:
    from atlas.artifacts.store import RunStore
    from atlas.render.build import build_site
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    with RunStore(run_dir).lock():  # not while a run is writing the same folder
        index = build_site(run_dir)
    print(index.resolve())
    return 0
