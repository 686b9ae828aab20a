"""`atlas figure RUN --units LAYER:UNITS --out FILE`: chosen units of a run as one figure."""
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


def run(args: argparse.Namespace) -> int:
    from atlas.figures import make_figure
    out = make_figure(args.run_dir, args.units, args.out, columns=args.columns, dpi=args.dpi,
                      cell=args.cell, title=args.title)
    print(Path(out).resolve())
    return 0
