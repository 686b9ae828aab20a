"""`atlas run`: an atlas for any model and data, from a TOML config and flags."""
from __future__ import annotations

import argparse

from atlas.cli.common import add_run_flags, config_from_args, distributed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="build an atlas for any model and data",
                       description="Build an atlas from a TOML config; flags override the config. "
                                   "Prints the path of index.html last.")
    p.add_argument("config", nargs="?", help="a TOML config file (keys: see README)")
    add_run_flags(p)


def run(args: argparse.Namespace) -> int:
    from atlas.pipeline import run as run_pipeline
    cfg = config_from_args(args)
    index = run_pipeline(cfg, **distributed(), hand_off="run" if getattr(args, "whole_process", False) else None)
    if distributed()["rank"] == 0:
        print(index.resolve())
    return 0
