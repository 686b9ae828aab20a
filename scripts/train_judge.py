"""Train the ResNet judges of benchmarks/fidelity.py (seeded, reproducible).

    python scripts/train_judge.py --dataset world      # -> atlas/weights/worldnet-resnet-judge.pt
    python scripts/train_judge.py --dataset cifar10 --data ../shared/data/cifar10
    # the shipped CIFAR-10 judge (a GPU: about a minute; ~50 min of one loaded CPU core):
    python scripts/train_judge.py --dataset cifar10 --data DIR --train-count 50000 \
        --blocks 2 --width 32 --epochs 30 --batch-size 256 --device cuda --workers 16

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
    ap.add_argument("--test-count", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--workers", type=int, default=2, help="processes decoding the images")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    build = lambda n: JudgeResNet(n, width=args.width, blocks=args.blocks)  # noqa: E731
    if args.dataset == "world":
        train, test = WorldSource(seed=1, count=args.train_count), WorldSource(seed=2, count=args.test_count)
        mean, std, augment, out = WORLD_MEAN, WORLD_STD, "flip", args.out or weights_path("worldnet-resnet-judge.pt")
    else:
        from atlas.models import get_spec
        spec = get_spec("cifarnet")
        train = FolderSource(args.data / "train", limit=args.train_count)
        test = FolderSource(args.data / "test", limit=args.test_count)
        mean, std, augment, out = spec.mean, spec.std, "crop_flip", args.out or weights_path("cifarnet-resnet-judge.pt")
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, augment=augment, lr=args.lr, weight_decay=5e-4,
                      batch_size=args.batch_size)
    meta = train_classifier(train, test, cfg, out, "judge_resnet", mean, std, build=build, workers=args.workers,
                            device=args.device)
    print(f"held-out accuracy {meta['test_accuracy']:.4f} in {meta['seconds']} s -> {out}")


if __name__ == "__main__":
    main()
