"""`atlas train-generator`: train a DeePSiM generator that inverts a layer of a model (a DGN-AM prior)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-generator", help="train a DeePSiM generator that inverts a layer of a model",
        description="Train a generator G so that G(E(x)) = x for the model's layer E (default: its ReLU'd "
                    "fc6), with pixel, feature (comparator) and adversarial losses. Keeps a checkpoint and "
                    "a sample sheet per epoch in --work-dir; rerunning resumes. Under torchrun it trains data-"
                    "parallel (each process a share of every batch; rank 0 writes). Writes an atlas generator "
                    "file with the code statistics DGN-AM clips to.")
    p.add_argument("--model", default="worldnet", help="encoder model name (default: worldnet)")
    p.add_argument("--weights", help="encoder weight file; default: the model's own weights")
    p.add_argument("--data", default="world", help="'world' or an image folder (default: world)")
    p.add_argument("--images", type=int, default=20000, help="training images (world: drawn from seed 1)")
    p.add_argument("--held-out", type=int, default=512, help="held-out images (world: seed 2) for the loss report")
    p.add_argument("--layer", help="code node (default: the model's ReLU'd fc6)")
    p.add_argument("--comparator", help="comparator node for the feature loss (default: conv5 level)")
    p.add_argument("--encoder", choices=["model", "own"], default="model",
                   help="'model': invert the model's --layer (DeePSiM, the default); 'own': train an encoder "
                        "with the generator (an autoencoder whose ReLU'd code DGN-AM optimizes; the model's "
                        "--comparator still gives the feature loss)")
    p.add_argument("--code-dim", type=int, default=128, help="code width of the own encoder (--encoder own)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="generator channels after the reshape")
    p.add_argument("--fc-width", type=int, default=256, help="width of the generator's linear layers")
    p.add_argument("--out-size", type=int, help="generator output size (default: the model's input size)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l-img", type=float, default=1.0)
    p.add_argument("--l-feat", type=float, default=1.0)
    p.add_argument("--l-adv", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest on a busy machine)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", type=Path, required=True, help="generator file to write")
    p.add_argument("--work-dir", type=Path, help="checkpoints and samples (default: OUT's name + '.work')")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="train fewer epochs if --epochs would not fit in SECONDS (measured on the first epoch)")


def _world_pixels(seed: int, count: int, size: int) -> np.ndarray:
    from atlas.data.sources import WorldSource
    from atlas.train.classifier import load_pixels
    return load_pixels(WorldSource(seed=seed, count=count, size=size), workers=2)


def _folder_pixels(folder: str, count: int, size: int, offset: int = 0) -> np.ndarray:
    from torchvision.transforms import v2 as T

    from atlas.data.sources import FolderSource
    src = FolderSource(folder)
    # a fixed shuffle, so a split of a class-sorted folder holds every class
    order = np.random.default_rng(0).permutation(len(src))
    ids = [int(i) for i in order[offset:offset + count]]
    if not ids:
        raise ValueError(f"{folder}: no images left for this split (it has {len(src)})")
    tf = T.Compose([T.PILToTensor(), T.Resize(size, antialias=True), T.CenterCrop(size)])

    def pixels(i: int) -> np.ndarray:
        img = src.load(i)
        if img.size == (size, size):  # already the generator's size (CIFAR-10 at 32): 9x faster
            return np.asarray(img.convert("RGB"))
        return tf(img).permute(1, 2, 0).numpy()
    return np.stack([pixels(i) for i in ids])


def run(args: argparse.Namespace) -> int:
    from atlas.context import pick_device, weights_identity
    from atlas.models import get_spec, load_model
    from atlas.train.generator import GeneratorTrainConfig, train_generator

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from atlas.models.layers import resolve_layers
    spec = get_spec(args.model)
    code = args.layer or spec.generator_code
    comparator = args.comparator or spec.generator_comparator
    if not code or not comparator:
        raise ValueError(f"model {spec.name!r} names no default code/comparator node; pass --layer and --comparator")
    from atlas import distributed
    rank, world_size = distributed.rank_and_size()
    device = distributed.local_device(args.device) or pick_device(args.device)
    model = load_model(spec, args.weights)
    code, comparator = (resolve_layers(model, spec, [n])[0].name for n in (code, comparator))  # checked LayerRefs
    out_size = args.out_size or spec.input_size
    if args.data == "world":
        train = _world_pixels(1, args.images, out_size)
        held = _world_pixels(2, args.held_out, out_size)
    else:
        train = _folder_pixels(args.data, args.images, out_size)
        held = _folder_pixels(args.data, args.held_out, out_size, offset=len(train))
    cfg = GeneratorTrainConfig(code_node=code, comparator_node=comparator, out_size=out_size, width=args.width,
                               fc_width=args.fc_width, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               l_img=args.l_img, l_feat=args.l_feat, l_adv=args.l_adv, seed=args.seed,
                               encoder=args.encoder, code_dim=args.code_dim)
    work = args.work_dir or args.out.with_name(args.out.name + ".work")
    encoder = {"model": spec.name, "weights": weights_identity(spec, args.weights), "data": args.data}
    distributed.init(world_size)  # under torchrun: data-parallel training, rank 0 writes
    train_generator(model, spec, train, held, cfg, args.out, work, encoder, resume=not args.no_resume,
                    device=device, time_budget=args.time_budget, log=print if rank == 0 else (lambda _s: None))
    if rank == 0:
        print(args.out.resolve())
    return 0
