"""How long atlas takes to list an ImageNet-sized folder, against a bare walk of the same folder.

Writes an ImageNet-layout folder (`train/<synset>/<synset>_<i>.JPEG`, 1000 synsets,
1,281,167 files by default: ImageNet train's count) of empty files on a RAM file system
(/dev/shm when there is one, so the figures are the code's, not a disk's), then times, side
by side in one run:

- `walk_s`: a bare `os.walk` collecting every file name (what any listing must do);
- `listing_s`: atlas's `ImageNetFolder` (the `--data` folder source for this layout): the
  walk, the suffix filter, sorting, the compact name table and the labels;
- `fingerprint_s`: its `fingerprint()` (one `stat` per file: what a resumed run compares);
- `bytes_per_file`: the memory the listing keeps per file (tracemalloc, after the listing).

Nothing is decoded: the files are empty, and a listing never opens one (a bad file is
found at its first decode, in the top-k pass). `listing_vs_walk` = listing_s / walk_s.
Last line: one JSON object.

    python benchmarks/listing_scale.py [--files 1281167] [--classes 1000] [--dir /dev/shm]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.data.bigsources import ImageNetFolder  # noqa: E402

IMAGENET_TRAIN = 1_281_167


def write_tree(root: Path, files: int, classes: int) -> None:
    """`files` empty JPEG files in `classes` synset folders under root/train."""
    per, extra = divmod(files, classes)
    for c in range(classes):
        synset = f"n{1440764 + 7919 * c:08d}"
        folder = root / "train" / synset
        folder.mkdir(parents=True)
        for i in range(per + (c < extra)):
            os.close(os.open(folder / f"{synset}_{i}.JPEG", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def bare_walk(root: Path) -> int:
    """Every file name under root, the plainest way: os.walk, names joined."""
    names = []
    for dirpath, _, filenames in os.walk(root):
        names += [os.path.join(dirpath, f) for f in filenames]
    return len(names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=IMAGENET_TRAIN)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where to write the folder (default: /dev/shm, else the temporary folder)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="atlas-listing-", dir=args.dir))
    try:
        t = time.perf_counter()
        write_tree(base, args.files, args.classes)
        print(f"{args.files} empty files in {args.classes} folders under {base} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        walks, listings, prints = [], [], []
        for _ in range(2):  # pairs, alternating; the first pair warms the directory cache
            t = time.perf_counter()
            n_walk = bare_walk(base / "train")
            walks.append(time.perf_counter() - t)
            gc.collect()
            t = time.perf_counter()
            src = ImageNetFolder(base, split="train")
            listings.append(time.perf_counter() - t)
            t = time.perf_counter()
            src.fingerprint()
            prints.append(time.perf_counter() - t)
            del src
            gc.collect()
        tracemalloc.start()
        src = ImageNetFolder(base, split="train")
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if len(src) != args.files or n_walk != args.files:
            raise SystemExit(f"listed {len(src)} images, walked {n_walk}, wrote {args.files}")
        result = {
            "files": args.files, "classes": len(src.class_names), "dir": str(args.dir),
            "walk_s": round(min(walks), 4), "listing_s": round(min(listings), 4),
            "listing_vs_walk": round(min(listings) / min(walks), 2),
            "fingerprint_s": round(min(prints), 4),
            "listing_us_per_file": round(min(listings) / args.files * 1e6, 2),
            "bytes_per_file": round(kept / args.files, 1), "peak_bytes_per_file": round(peak / args.files, 1),
            "runs_s": {"walk": [round(x, 2) for x in walks], "listing": [round(x, 2) for x in listings],
                       "fingerprint": [round(x, 2) for x in prints]},
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
