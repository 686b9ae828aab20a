"""Train the CIFAR-10 classifier shipped as atlas/weights/cifarnet.pt (seeded, reproducible).

    python scripts/train_cifarnet.py [--data ../shared/data/cifar10] [--epochs 25] [--seed 0]

Reads the image-folder copy of CIFAR-10 (train/ and test/ with a folder per class). Online
users can point --data at any folder in that layout (e.g. one exported from torchvision).
"""
import argparse
from pathlib import Path

from atlas.data.sources import FolderSource
from atlas.models.spec import get_spec as spec_of
from atlas.resources import weights_path
from atlas.train.classifier import TrainConfig, train_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/cifar10")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--fc", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", type=Path, default=weights_path("cifarnet.pt"))
    args = ap.parse_args()
    spec = spec_of("cifarnet")
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, width=args.width, fc=args.fc, lr=args.lr,
                      augment="crop_flip", label_smoothing=0.1, dropout=0.3)
    meta = train_classifier(FolderSource(args.data / "train"), FolderSource(args.data / "test"), cfg, args.out,
                            "cifarnet", spec.mean, spec.std)
    print(f"test accuracy {meta['test_accuracy']:.4f} in {meta['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
