"""The `atlas` command line: one module per command, one table (`COMMANDS`).

Each module has `add_parser(sub)` (its flags and help) and `run(args) -> int`. Errors a
user can fix (bad values, missing files, a run folder in use or of another format) print
one line naming the problem and exit with code 2; nothing is computed twice.
"""
from __future__ import annotations

import argparse
import sys

from atlas import __version__
from atlas.cli import (archive, convert_generator, demo, figure, layers, models, render, run, serve,
                       train_generator, verify)
from atlas.cli.common import UsageError

COMMANDS = {"demo": demo, "run": run, "layers": layers, "models": models, "render": render,
            "train-generator": train_generator, "convert-generator": convert_generator, "serve": serve,
            "figure": figure, "archive": archive, "verify": verify}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="atlas", description="Static neuron atlases of image classifiers.")
    ap.add_argument("--version", action="version", version=f"atlas {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from atlas.artifacts.store import RunLockedError
    from atlas.config import ConfigError
    from atlas.data.sources import DataError
    try:
        return COMMANDS[args.command].run(args)
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


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
