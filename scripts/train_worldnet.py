"""Train the demo network shipped as atlas/weights/worldnet.pt (seeded, reproducible).

    python scripts/train_worldnet.py [--epochs 12] [--train-count 40000] [--seed 0]

Train images are world seed 1, held-out images world seed 2 (the demo atlas's data).
"""
import argparse
from pathlib import Path

import torch

from atlas.data.sources import WorldSource
from atlas.models.zoo import WORLD_MEAN, WORLD_STD
from atlas.resources import weights_path
from atlas.train.classifier import TrainConfig, train_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--train-count", type=int, default=40000)
    ap.add_argument("--test-count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--fc", type=int, default=128)
    ap.add_argument("--out", type=Path, default=weights_path("worldnet.pt"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, width=args.width, fc=args.fc, augment="flip")
    meta = train_classifier(WorldSource(seed=1, count=args.train_count), WorldSource(seed=2, count=args.test_count),
                            cfg, args.out, "worldnet", WORLD_MEAN, WORLD_STD)
    print(f"held-out accuracy {meta['test_accuracy']:.4f} in {meta['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
