"""Seeded, reproducible training of the AlexNet-style classifiers (world and CIFAR-10)."""
from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from atlas.data.sources import Source
from atlas.models.checkpoint import save_classifier
from atlas.models.worldnet import WorldNet


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    seed: int = 0
    width: int = 16
    fc: int = 128
    dropout: float = 0.3
    augment: str = "flip"  # "flip" (world) or "crop_flip" (CIFAR-10)
    label_smoothing: float = 0.0


def _load_chunk(args):
    source, ids = args
    return np.stack([np.asarray(source.load(int(i))) for i in ids])


def load_pixels(source: Source, workers: int = 2) -> np.ndarray:
    """All images of a (small-image) source as one uint8 array (N, H, W, 3)."""
    ids = np.arange(len(source))
    chunks = np.array_split(ids, max(1, len(ids) // 2000))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(tqdm(pool.map(_load_chunk, [(source, c) for c in chunks]), total=len(chunks),
                              desc="decoding images", unit="chunk"))
    else:
        parts = [_load_chunk((source, c)) for c in chunks]
    return np.concatenate(parts)


def _normalize(x_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    x = x_uint8.permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean, device=x.device).view(1, 3, 1, 1)) / torch.tensor(std, device=x.device).view(1, 3, 1, 1)


def _augment(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Random flips (and for "crop_flip" 4-px reflect-padded crops), drawn from the CPU
    generator `gen` whatever x's device, so a run is the same on CPU and GPU."""
    n, dev = x.shape[0], x.device
    flip = (torch.rand(n, generator=gen) < 0.5).to(dev)
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    if kind == "crop_flip":
        pad = F.pad(x, (4, 4, 4, 4), mode="reflect")
        dx = torch.randint(0, 9, (n,), generator=gen).to(dev)
        dy = torch.randint(0, 9, (n,), generator=gen).to(dev)
        h, w = x.shape[2:]
        rows = (dy.view(n, 1) + torch.arange(h, device=dev).view(1, h))  # (n, h)
        cols = (dx.view(n, 1) + torch.arange(w, device=dev).view(1, w))
        x = pad[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(3, device=dev).view(1, 3, 1, 1),
                rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
    return x


def evaluate(model: nn.Module, pixels: np.ndarray, labels: np.ndarray, mean, std, batch: int = 500,
             device: torch.device | str = "cpu") -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(pixels), batch):
            x = _normalize(torch.from_numpy(pixels[i:i + batch]).to(device), mean, std)
            correct += (model(x).argmax(1).cpu().numpy() == labels[i:i + batch]).sum()
    return float(correct) / len(pixels)


def train_classifier(train: Source, test: Source, cfg: TrainConfig, out: Path, arch: str,
                     mean, std, workers: int = 2, build=None, device: torch.device | str = "cpu") -> dict:
    """Train WorldNet (or `build(num_classes)`, a module with a `config` dict) on `train`,
    report held-out accuracy on `test`, save to `out` (weights on the CPU). On a GPU
    (`device`) the images live on the device; the random draws stay on the CPU."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    xtr, ytr = load_pixels(train, workers), np.asarray(train.labels)
    xte, yte = load_pixels(test, workers), np.asarray(test.labels)
    model = build(len(train.class_names)) if build is not None else \
        WorldNet(num_classes=len(train.class_names), width=cfg.width, fc=cfg.fc, dropout=cfg.dropout)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(xtr) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.2)
    xtr_t, ytr_t = torch.from_numpy(xtr).to(device), torch.from_numpy(ytr).long().to(device)
    history = []
    t0 = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        running = 0.0
        for step in bar:
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size].to(device)
            x = _augment(_normalize(xtr_t[idx], mean, std), cfg.augment, gen)
            loss = F.cross_entropy(model(x), ytr_t[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running = 0.9 * running + 0.1 * loss.item() if step else loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
        acc = evaluate(model, xte, yte, mean, std, device=device)
        history.append({"epoch": epoch + 1, "loss": running, "test_accuracy": acc})
        print(f"epoch {epoch + 1}: loss {running:.3f}, held-out accuracy {acc:.4f}", flush=True)
    meta = {"train": train.name, "test": test.name, "train_images": len(xtr), "test_images": len(xte),
            "test_accuracy": history[-1]["test_accuracy"], "history": history,
            "train_config": asdict(cfg), "seconds": round(time.time() - t0, 1), "torch": str(torch.__version__),
            "device": str(device)}
    model = model.cpu()
    save_classifier(out, model, arch, model.config, train.class_names, meta)
    return meta
