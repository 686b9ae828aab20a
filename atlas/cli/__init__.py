"""The `atlas` command line: one module per command, one table (`COMMANDS`).

Each module has `add_parser(sub)` (its flags and help) and `run(args) -> int`. Errors a
user can fix (bad values, missing files, a run folder in use or of another format) print
one line naming the problem and exit with code 2; nothing is computed twice.
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn

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
    """Run one command. `argv` None means this call is the whole process (the `atlas` script,
    `python -m atlas`): `run` and `demo` may then render in a fresh image of the process
    (atlas.pipeline.hand_off_render); with `argv` given (tests, other programs) they return."""
    args = build_parser().parse_args(argv)
    args.whole_process = argv is None
    from atlas.memory import limit_arenas
    limit_arenas()  # before any thread starts: a run's peak memory the same from run to run
    name = getattr(args, "shown_as", None) or args.command
    from atlas.artifacts.store import RunLockedError
    from atlas.config import ConfigError
    from atlas.data.sources import DataError
    try:
        return COMMANDS[args.command].run(args)
    except (UsageError, ConfigError, DataError, RunLockedError, FileNotFoundError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"atlas {name}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied: not a usage error, but no traceback
        print(f"atlas {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept, run the same command to resume", file=sys.stderr)
        return 130


def end_process(code: int) -> NoReturn:
    """Exit with `code` without the interpreter's teardown of its modules.

    After the last line, a process that loaded torch, matplotlib, openTSNE and UMAP spent
    0.35-0.85 s (a torchrun worker that only imported torch: 1.0-1.3 s) clearing module
    dictionaries and freeing objects that the operating system frees anyway; 0.1-0.3 s this
    way. Every rank of the 1- and the 2-process run pays it (issue 16).
    What the normal exit does that matters is kept: the atexit functions run (multiprocessing
    ends its children, logging flushes, temporary folders go), then the standard streams are
    flushed and the process ends. Every file the run writes is closed before its stage is in
    place. With a thread still running, the normal exit (which joins it) is taken instead."""
    import atexit
    import gc
    import os
    import threading
    gc.freeze()  # no full collection of everything the run made, whichever exit is taken
    if not isinstance(code, int) or threading.active_count() > 1:
        raise SystemExit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say there
            pass
    os._exit(code)


__all__ = ["COMMANDS", "UsageError", "build_parser", "end_process", "main"]
