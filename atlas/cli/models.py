"""`atlas models`: the models atlas knows by name."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list the models atlas knows by name",
                   description="List the registered models and their input settings.")


def run(args: argparse.Namespace) -> int:
    from atlas.models import registry
    for name, spec in sorted(registry().items()):
        print(f"{name:10} {spec.input_size}px  {spec.description}")
    return 0
