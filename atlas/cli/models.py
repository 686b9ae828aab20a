"""`atlas models`: every model atlas opens by name, with input size and source."""
from __future__ import annotations

import argparse

from atlas.cli.common import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models atlas knows by name",
                       description="List every model atlas opens by name (shipped, torchvision, timm:NAME) "
                                   "with input size and source. Your own module: --model file.py:factory.")
    p.add_argument("--filter", help="only names containing this text (or matching this glob, e.g. 'timm:vit*')")


def run(args: argparse.Namespace) -> int:
    from atlas.models.listing import model_rows
    rows = model_rows(args.filter)
    if not rows:
        raise UsageError(f"no model name matches {args.filter!r}")
    width = max(len(r.name) for r in rows)
    for r in rows:
        size = f"{r.input_size}px" if r.input_size else "?"
        print(f"{r.name.ljust(width)}  {size:>6}  {r.source:11}  {r.description}")
    print(f"{len(rows)} models; your own: --model path/to/file.py:factory or package.module:factory")
    return 0
