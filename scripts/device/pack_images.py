"""Pack an image folder's files, bytes unchanged, into one blob + an index (and back).

The device machine gets only what travels inside the repository (64 MiB); 50,000 CIFAR-10
JPEGs as files in a tar would carry ~40 MB of headers and padding, as one blob they are
their 46 MB of bytes.

    python scripts/device/pack_images.py pack ../shared/data/cifar10/train DIR/train [--limit N]
    python scripts/device/pack_images.py unpack DIR/train /tmp/cifar10/train
"""
import argparse
import json
from pathlib import Path

import numpy as np


def pack(folder: Path, dest: Path, limit: int | None) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    offsets = [0]
    with open(dest.with_suffix(".bin"), "wb") as out:
        for p in files:
            offsets.append(offsets[-1] + out.write(p.read_bytes()))
    np.save(dest.with_suffix(".offsets.npy"), np.asarray(offsets, dtype=np.int64))
    dest.with_suffix(".names.json").write_text(json.dumps([str(p.relative_to(folder)) for p in files]))
    print(f"{len(files)} files, {offsets[-1] / 1e6:.1f} MB -> {dest}.*")


def unpack(src: Path, folder: Path) -> None:
    blob = src.with_suffix(".bin").read_bytes()
    offsets = np.load(src.with_suffix(".offsets.npy"))
    names = json.loads(src.with_suffix(".names.json").read_text())
    for i, name in enumerate(names):
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob[offsets[i]:offsets[i + 1]])
    print(f"{len(names)} files -> {folder}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("verb", choices=["pack", "unpack"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--limit", type=int)
    a = ap.parse_args()
    pack(a.src, a.dest, a.limit) if a.verb == "pack" else unpack(a.src, a.dest)
