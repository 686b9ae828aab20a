"""Train an unconditional GAN on CIFAR-10's training photos as a DGN-AM prior (atlas/train/gan.py).

    PYTHONPATH=. python scripts/train_gan.py --data ../shared/data/cifar10/train \\
        --out atlas/weights/cifar10-gan-generator.pt --device cuda --time-budget 240

The file is an atlas generator file (the DeePSiM layer list, the latent's statistics), so
`--set generator=FILE` (or the config key `generator`) makes it DGN-AM's prior.
"""
import argparse
from dataclasses import fields
from pathlib import Path

import torch

from atlas.cli.train_generator import _folder_pixels
from atlas.train.gan import GANConfig, train_gan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="image folder (class subfolders)")
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work-dir", type=Path)
    ap.add_argument("--time-budget", type=float, help="stop after this many seconds of training")
    ap.add_argument("--device", default="cpu")
    for f in fields(GANConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = ap.parse_args()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    cfg = GANConfig(**{f.name: getattr(args, f.name) for f in fields(GANConfig)})
    pixels = _folder_pixels(str(args.data), args.images, cfg.out_size)
    print(f"{len(pixels)} images", flush=True)
    train_gan(pixels, cfg, args.out, args.work_dir or args.out.with_name(args.out.name + ".work"),
              time_budget=args.time_budget, device=args.device, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
