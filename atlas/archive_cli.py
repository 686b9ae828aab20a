"""Subcommands for papers and archives: `atlas figure`, `atlas archive`, `atlas verify`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "figure", help="compose chosen units of a run into a figure (PDF, SVG or PNG)",
        description="Draw the chosen units as a grid: one row per unit, with its label; columns of "
                    "DGN seeds, other priors and top patches. The suffix of --out picks the format "
                    "(.pdf and .svg keep text as text). Reads only the run's artifacts.")
    p.add_argument("run_dir", help="a run folder (with stages/)")
    p.add_argument("--units", nargs="+", required=True, metavar="LAYER:UNITS",
                   help="layer (alias or node name) and unit indices, e.g. fc8:1,5,9 conv5:12 conv3:0-3")
    p.add_argument("--out", required=True, help="output file: .pdf, .svg or .png")
    p.add_argument("--columns", help="comma-separated: dgn, pixel, fourier, patches, images, each "
                                     "optionally :N or :all (default: all DGN seeds, one seed of each "
                                     "other prior present, 6 top patches)")
    p.add_argument("--dpi", type=float, default=300, help="PNG resolution in dots per inch (default 300); PDF and SVG embed each "
                        "image at its own resolution")
    p.add_argument("--cell", type=float, default=0.6, help="width of one image cell in inches (default 0.6)")
    p.add_argument("--title", help="a title above the grid")

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

    p = sub.add_parser(
        "verify", help="check an archive (or unpacked folder) against its manifest",
        description="Hash every file and compare with atlas-manifest.json; print each missing, extra "
                    "or changed file. Exit status 0 when all match, 1 otherwise, 2 when the input is "
                    "not an atlas archive.")
    p.add_argument("path", help="a .zip/.tar.gz archive, an unpacked archive, or a run folder "
                                "archived with --in-place")


def cmd_figure(args) -> int:
    from atlas.figures import make_figure
    out = make_figure(args.run_dir, args.units, args.out, columns=args.columns, dpi=args.dpi,
                      cell=args.cell, title=args.title)
    print(Path(out).resolve())
    return 0


def cmd_archive(args) -> int:
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


def cmd_verify(args) -> int:
    from atlas.archive import verify
    report = verify(args.path)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


HANDLERS = {"figure": cmd_figure, "archive": cmd_archive, "verify": cmd_verify}
