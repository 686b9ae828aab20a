"""`atlas archive RUN_DIR`: a run's site, artifacts and provenance in one file."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "archive", help="pack a run's site, artifacts and provenance into one file",
        description="Write RUN_DIR's site, stages and config into a .zip or .tar.gz with "
                    "atlas-manifest.json (provenance and a sha256 of every file) and a README.txt. "
                    "Unpacked, site/index.html opens in a browser without a server.")
    p.add_argument("run_dir")
    p.add_argument("--out", help="archive file, .zip, .tar.gz or .tgz (default: RUN_DIR.zip beside the run)")
    p.add_argument("--in-place", action="store_true",
                   help="write the manifest and README into RUN_DIR instead of making an archive")
    p.add_argument("--no-data-hashes", action="store_true",
                   help="list the data set's files without hashing them (large image folders)")


def run(args: argparse.Namespace) -> int:
    from atlas.archive import pack, pack_in_place
    run_dir = Path(args.run_dir)
    if args.in_place:
        if args.out:
            raise ValueError("--in-place writes into RUN_DIR; leave out --out")
        print(pack_in_place(run_dir, hash_data=not args.no_data_hashes).resolve())
        return 0
    out = Path(args.out) if args.out else run_dir.resolve().with_name(run_dir.resolve().name + ".zip")
    result = pack(run_dir, out, hash_data=not args.no_data_hashes)
    print(f"archive: {result.files} files, {result.content_bytes / 1e6:.1f} MB packed into "
          f"{result.bytes / 1e6:.1f} MB in {result.seconds:.1f} s")
    if result.unchecked:
        print(f"note: {len(result.unchecked)} file(s) under stages/ belong to no stage, e.g. {result.unchecked[0]}")
    print(result.path.resolve())
    return 0
