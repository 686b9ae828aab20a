"""`atlas layers MODEL`: a model's analyzable layers by dotted node name."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="list a model's analyzable layers",
                       description="List the layers of MODEL by dotted node name, with aliases, output "
                                   "shapes and unit counts. Builds the model with random weights.")
    p.add_argument("model")


def run(args: argparse.Namespace) -> int:
    from atlas.models import get_spec, load_model
    from atlas.models.layers import list_layers
    spec = get_spec(args.model)
    model = load_model(spec, "random")
    rows = list_layers(model, spec)
    width = max(len(r.name) for r in rows)
    print(f"{'node'.ljust(width)}  {'alias':6}  {'kind':4}  {'output':>16}  units")
    for r in rows:
        print(f"{r.name.ljust(width)}  {(r.alias or ''):6}  {r.kind:4}  {'x'.join(map(str, r.shape)):>16}  {r.units}")
    print(f"{len(rows)} layers; {sum(r.units for r in rows)} units in all")
    return 0
