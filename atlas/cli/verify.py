"""`atlas verify PATH`: check an archive (or unpacked folder) against its manifest."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="check an archive (or unpacked folder) against its manifest",
        description="Hash every file and compare with atlas-manifest.json; print each missing, extra "
                    "or changed file. Exit status 0 when all match, 1 otherwise, 2 when the input is "
                    "not an atlas archive.")
    p.add_argument("path", help="a .zip/.tar.gz archive, an unpacked archive, or a run folder "
                                "archived with --in-place")


def run(args: argparse.Namespace) -> int:
    from atlas.archive import verify
    report = verify(args.path)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1
