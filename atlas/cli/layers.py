"""`atlas layers MODEL`: a model's analysable layers, unit counts and how a unit's position
maps to the image; `*` marks the default layers."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="list a model's analyzable layers",
                       description="List the layers of MODEL by dotted node name, with aliases, layout, "
                                   "unit counts and how a unit's position maps to the image; * marks the "
                                   "default layers. Builds the model with random weights (a file.py:factory "
                                   "model runs that file's code).")
    p.add_argument("model")
    p.add_argument("--input-size", type=int, dest="input_size", help="probe at this input size")
    p.add_argument("--all", action="store_true", help="also list layers that cannot be analysed")


def run(args: argparse.Namespace) -> int:
    from atlas.evidence.receptive_field import receptive_fields
    from atlas.models import get_spec, load_model
    from atlas.models.layers import family_defaults, list_layers
    from atlas.models.listing import position_text
    spec = get_spec(args.model)
    if args.input_size:
        spec = spec.at_input_size(args.input_size)
    model = load_model(spec, "random")
    every = list_layers(model, spec, with_unanalysable=True)
    rows = [r for r in every if r.layout != "none"]
    defaults = set(spec.resolve_layer(n) for n in spec.default_layers) or set(family_defaults(model, rows))
    fields = receptive_fields(model, spec.input_size, [r for r in rows if r.name in defaults or r.kind == "conv"])
    width = max(len(r.name) for r in every)
    print(f"model {spec.name} ({spec.source}), input {spec.input_size}x{spec.input_size}")
    print(f"  {'node'.ljust(width)}  {'alias':6}  {'layout':10}  {'units x grid':>14}  position -> image")
    for r in every if args.all else rows:
        grid = "x".join(map(str, r.shape[1:])) or "-"
        mark = "*" if r.name in defaults else " "
        where = position_text(r, fields.get(r.name)) if r.layout != "none" else \
            f"cannot be analysed: output {tuple(r.raw_shape)}"
        print(f"{mark} {r.name.ljust(width)}  {(r.alias or ''):6}  {r.layout:10}  {r.units:>7} x {grid:<7}  {where}")
    print(f"{len(rows)} analysable layers ({len(every) - len(rows)} others); {sum(r.units for r in rows)} units; "
          f"* = default layers")
    notes = sorted({n for f in fields.values() for n in f.notes if "token" in n or "effective" in n})
    for note in notes:
        print(f"note: {note}")
    return 0
