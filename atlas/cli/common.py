"""What several commands share: the usage error, the run flags and the config they build."""
from __future__ import annotations

import argparse


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def add_run_flags(p: argparse.ArgumentParser, with_data: bool = True) -> None:
    p.add_argument("--out", help="run folder (artifacts and site); default from the config")
    p.add_argument("--quick", action="store_true", help="a small version of the run, for checks")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to compute")
    if with_data:
        p.add_argument("--model", help="a name (see `atlas models`), timm:NAME, or your own module as "
                                       "path/to/file.py:factory or package.module:factory (this imports "
                                       "that file and runs its code)")
        p.add_argument("--weights", help="a state dict (.pt, read with weights_only) or .safetensors file, "
                                         "or 'random'; default: the model's own weights (the library's API "
                                         "online, its cache offline)")
        p.add_argument("--data", help="'world', an image folder, or torchvision:NAME (e.g. torchvision:CIFAR10)")
        p.add_argument("--layers", nargs="+", help="layers by node name or alias (conv5, fc7); see `atlas layers MODEL`")
        p.add_argument("--units", nargs="+", metavar="LAYER:UNITS",
                       help="units to visualize per layer: fc8:0-99, conv5:all, fc6:3,7 (others: units_limit)")
        p.add_argument("--input-size", type=int, dest="input_size",
                       help="feed the model SIZE x SIZE images instead of its own size")
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", default=[],
                       help="override any config key, value in TOML syntax (e.g. --set seeds=3 topk=16)")


def config_from_args(args: argparse.Namespace):
    from atlas import config as C
    values: dict = {}
    if getattr(args, "config", None):
        values.update(C.load_toml(args.config))
    cfg = C.from_dict(values, origin=args.config or "config")
    flags = {k: getattr(args, k, None) for k in ("model", "weights", "data", "layers", "out", "device",
                                                 "units", "input_size")}
    cfg = C.from_dict({k: v for k, v in flags.items() if v is not None}, cfg, origin="command line")
    overrides = {}
    for item in getattr(args, "set", []) or []:
        if "=" not in item:
            raise C.ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            overrides[key] = C.tomllib.loads(f"v = {raw}")["v"]
        except C.tomllib.TOMLDecodeError:
            overrides[key] = raw  # a bare string
    cfg = C.from_dict(overrides, cfg, origin="--set")
    if args.quick:
        cfg = C.quick(cfg)
    return cfg


def distributed() -> dict:
    from atlas.distributed import rank_and_size
    rank, size = rank_and_size()
    return {"rank": rank, "world_size": size}


