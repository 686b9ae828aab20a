"""The `atlas` command line. Every subcommand has --help; errors name the bad value."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from atlas import __version__


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def _add_run_flags(p: argparse.ArgumentParser, with_data: bool = True) -> None:
    p.add_argument("--out", help="run folder (artifacts and site); default from the config")
    p.add_argument("--quick", action="store_true", help="a small version of the run, for checks")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to compute")
    if with_data:
        p.add_argument("--model", help="model name (see `atlas models`)")
        p.add_argument("--weights", help="weight file, or 'random'; default: the model's own weights")
        p.add_argument("--data", help="'world', an image folder, or torchvision:NAME (e.g. torchvision:CIFAR10)")
        p.add_argument("--layers", nargs="+", help="layers by node name or alias (conv5, fc7)")
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", default=[],
                       help="override any config key, value in TOML syntax (e.g. --set seeds=3 topk=16)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="atlas", description="Static neuron atlases of image classifiers.")
    ap.add_argument("--version", action="version", version=f"atlas {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="build the atlas of the embedded world network (no network needed)",
                       description="Build the complete atlas of the shipped world network on the embedded "
                                   "procedural world. Prints the path of index.html last.")
    p.add_argument("--out", default="atlas-demo", help="run folder (default: atlas-demo)")
    p.add_argument("--quick", action="store_true", help="a small version (well under 2 minutes)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to compute")

    p = sub.add_parser("run", help="build an atlas for any model and data",
                       description="Build an atlas from a TOML config; flags override the config. "
                                   "Prints the path of index.html last.")
    p.add_argument("config", nargs="?", help="a TOML config file (keys: see README)")
    _add_run_flags(p)

    p = sub.add_parser("layers", help="list a model's analyzable layers",
                       description="List the layers of MODEL by dotted node name, with aliases, output "
                                   "shapes and unit counts. Builds the model with random weights.")
    p.add_argument("model")

    sub.add_parser("models", help="list the models atlas knows by name",
                   description="List the registered models and their input settings.")

    p = sub.add_parser("render", help="re-render the site from a run's stored artifacts",
                       description="Render RUN_DIR/site from the artifacts in RUN_DIR/stages only.")
    p.add_argument("run_dir")

    from atlas import commands
    commands.add_parsers(sub)
    return ap


def config_from_args(args: argparse.Namespace):
    from atlas import config as C
    values: dict = {}
    if getattr(args, "config", None):
        values.update(C.load_toml(args.config))
    cfg = C.from_dict(values, origin=args.config or "config")
    flags = {k: getattr(args, k, None) for k in ("model", "weights", "data", "layers", "out", "device")}
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


def cmd_demo(args) -> int:
    from atlas.config import DEMO_FEATVIS, Config, quick
    from atlas.pipeline import run
    cfg = Config(out=args.out, title="atlas demo: the world network", **DEMO_FEATVIS)
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    if args.quick:
        cfg = quick(cfg)
    index = run(cfg)
    print(index.resolve())
    return 0


def cmd_run(args) -> int:
    from atlas.pipeline import run
    cfg = config_from_args(args)
    index = run(cfg, **_distributed())
    if _distributed()["rank"] == 0:
        print(index.resolve())
    return 0


def _distributed() -> dict:
    from atlas.distributed import rank_and_size
    rank, size = rank_and_size()
    return {"rank": rank, "world_size": size}


def cmd_layers(args) -> int:
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


def cmd_models(args) -> int:
    from atlas.models import registry
    for name, spec in sorted(registry().items()):
        print(f"{name:10} {spec.input_size}px  {spec.description}")
    return 0


def cmd_render(args) -> int:
    from atlas.render.build import build_site
    from atlas.artifacts.store import RunStore
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    with RunStore(run_dir).lock():  # not while a run is writing the same folder
        index = build_site(run_dir)
    print(index.resolve())
    return 0


COMMANDS = {"demo": cmd_demo, "run": cmd_run, "layers": cmd_layers, "models": cmd_models, "render": cmd_render}


def main(argv: list[str] | None = None) -> int:
    from atlas import commands
    args = build_parser().parse_args(argv)
    handler = COMMANDS.get(args.command) or commands.HANDLERS[args.command]
    from atlas.config import ConfigError
    from atlas.data.sources import DataError
    from atlas.artifacts.store import RunLockedError
    try:
        return handler(args)
    except (UsageError, ConfigError, DataError, RunLockedError, FileNotFoundError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"atlas {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied: not a usage error, but no traceback
        print(f"atlas {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
