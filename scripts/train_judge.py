"""Train the ResNet judges of benchmarks/fidelity.py (seeded, reproducible).

    python scripts/train_judge.py --dataset world      # -> atlas/weights/worldnet-resnet-judge.pt
    python scripts/train_judge.py --dataset cifar10 --data ../shared/data/cifar10

The judge is a small ResNet (atlas/models/judge_resnet.py), another architecture than the
AlexNet-style networks it judges, trained on the same training images (world seed 1;
CIFAR-10 train) and tested on the held-out ones (world seed 2; CIFAR-10 test).
"""
import argparse
from pathlib import Path

import torch

from atlas.data.sources import FolderSource, WorldSource
from atlas.models.judge_resnet import JudgeResNet
from atlas.models.zoo import WORLD_MEAN, WORLD_STD
from atlas.resources import weights_path
from atlas.train.classifier import TrainConfig, train_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["world", "cifar10"], default="world")
    ap.add_argument("--data", type=Path, help="CIFAR-10 image folder with train/ and test/")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-count", type=int, default=20000)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    build = lambda n: JudgeResNet(n, width=args.width, blocks=args.blocks)  # noqa: E731
    if args.dataset == "world":
        train, test = WorldSource(seed=1, count=args.train_count), WorldSource(seed=2, count=2000)
        mean, std, augment, out = WORLD_MEAN, WORLD_STD, "flip", args.out or weights_path("worldnet-resnet-judge.pt")
    else:
        from atlas.models import get_spec
        spec = get_spec("cifarnet")
        train = FolderSource(args.data / "train", limit=args.train_count)
        test = FolderSource(args.data / "test", limit=2000)
        mean, std, augment, out = spec.mean, spec.std, "crop_flip", args.out or weights_path("cifarnet-resnet-judge.pt")
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, augment=augment, lr=3e-3, weight_decay=5e-4)
    meta = train_classifier(train, test, cfg, out, "judge_resnet", mean, std, build=build)
    print(f"held-out accuracy {meta['test_accuracy']:.4f} in {meta['seconds']} s -> {out}")


if __name__ == "__main__":
    main()
