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
    p.add_argument("--stats-model", help="the generator's own encoder, whose codes give the statistics (refused "
                                         "for any other model: the released fc6 generator's bounds come "
                                         "from its bound file)")
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
        own = _own_encoder(args.src)
        if own.get("model") != args.stats_model:
            what = (f"its encoder is {own['model']!r}" if own.get("model") else
                    "the released fc6 generator inverts CaffeNet's fc6, which atlas does not open")
            raise ValueError(
                f"--stats-model {args.stats_model}: not the encoder of {args.src} ({what}); another model's "
                "code is another code space (its unit i has no relation to the generator's component i), "
                "so its statistics would be meaningless bounds. Use the release's bound file "
                "(--bounds act_range/3x/fc6.txt) or the generator's own encoder")
        spec = get_spec(args.stats_model)
        code = own.get("code_node") or spec.generator_code
        if not code:
            raise ValueError(f"model {spec.name!r} names no code node")
        model = load_model(spec, args.stats_weights)
        stats = stats_from_images(model, spec, code, args.stats_data, args.stats_images)
        encoder = {"model": spec.name, "code_node": code, "input_size": spec.input_size,
                   "comparator_node": own.get("comparator_node") or spec.generator_comparator}
    bundle = convert(args.src, stats, args.out, encoder)
    print(f"wrote {args.out} ({bundle.code_dim}-d code, ub {float(bundle.stats.ub.min()):.2f}.."
          f"{float(bundle.stats.ub.max()):.2f})")
    return 0


def _own_encoder(src: Path) -> dict:
    """The encoder an atlas generator file records ({} for the released port / Caffe files)."""
    if str(src).endswith(".caffemodel") or not Path(src).is_file():
        return {}
    import torch
    try:
        payload = torch.load(src, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch file: the converter reports it
        return {}
    from atlas.priors.genfile import FORMAT
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return dict(payload.get("encoder") or {})
    return {}
