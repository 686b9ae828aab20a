"""`atlas convert-generator`: released DeePSiM fc6 weights as an atlas generator file."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-generator", help="turn released DeePSiM fc6 weights into an atlas generator file",
        description="Read the PyTorch port (upconvGAN_fc6.pt) or the Caffe release (*.caffemodel) of the "
                    "fc6 generator and add the code statistics DGN-AM needs: either act_max.py's bound file "
                    "(--bounds, one upper bound per code component) or statistics measured over images "
                    "(--stats-model and --stats-data).")
    p.add_argument("src", type=Path, help="upconvGAN_fc6.pt or generator.caffemodel")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--bounds", type=Path, help="upper bounds file (e.g. act_range/3x/fc6.txt)")
    p.add_argument("--stats-model", help="model whose fc6 codes give the statistics (e.g. alexnet)")
    p.add_argument("--stats-weights", help="that model's weight file")
    p.add_argument("--stats-data", help="image folder for the statistics")
    p.add_argument("--stats-images", type=int, default=2000)


def run(args: argparse.Namespace) -> int:
    from atlas.priors.codestats import stats_from_images
    from atlas.priors.genfile import convert, read_upper_bounds

    if bool(args.bounds) == bool(args.stats_model):
        raise ValueError("give exactly one of --bounds FILE or --stats-model MODEL (with --stats-data DIR)")
    if args.bounds:
        stats = read_upper_bounds(args.bounds)
        encoder = {}
    else:
        if not args.stats_data:
            raise ValueError("--stats-model needs --stats-data (an image folder)")
        from atlas.models import get_spec, load_model
        spec = get_spec(args.stats_model)
        if not spec.generator_code:
            raise ValueError(f"model {spec.name!r} names no fc6 code node")
        model = load_model(spec, args.stats_weights)
        stats = stats_from_images(model, spec, spec.generator_code, args.stats_data, args.stats_images)
        encoder = {"model": spec.name, "code_node": spec.generator_code, "input_size": spec.input_size,
                   "comparator_node": spec.generator_comparator}
    bundle = convert(args.src, stats, args.out, encoder)
    print(f"wrote {args.out} ({bundle.code_dim}-d code, ub {float(bundle.stats.ub.min()):.2f}.."
          f"{float(bundle.stats.ub.max()):.2f})")
    return 0
