"""`atlas demo`: the complete atlas of the shipped world network on the embedded world."""
from __future__ import annotations

import argparse
import dataclasses


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the atlas of the embedded world network (no network needed)",
                       description="Build the complete atlas of the shipped world network on the embedded "
                                   "procedural world. Prints the path of index.html last.")
    p.add_argument("--out", default="atlas-demo", help="run folder (default: atlas-demo)")
    p.add_argument("--quick", action="store_true", help="a small version (well under 2 minutes)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to compute")


def run(args: argparse.Namespace) -> int:
    from atlas.config import DEMO_FEATVIS, Config, quick
    from atlas.cli.common import distributed
    from atlas.pipeline import run as run_pipeline
    cfg = Config(out=args.out, title="atlas demo: the world network", **DEMO_FEATVIS)
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    if args.quick:
        cfg = quick(cfg)
    # under torchrun: every rank, one job; as the whole process, the site is rendered in a fresh image
    index = run_pipeline(cfg, **distributed(), hand_off="demo" if getattr(args, "whole_process", False) else None)
    if distributed()["rank"] == 0:
        print(index.resolve())
    return 0
