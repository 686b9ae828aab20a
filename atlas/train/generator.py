"""Training a DeePSiM generator to invert a layer of an encoder (Dosovitskiy & Brox 2016).

For a real image x with code c = E(x) (the encoder's ReLU'd fc6 by default):
    loss_G = l_img * |G(c) - x|^2 + l_feat * |C(G(c)) - C(x)|^2 / var(C(x)) + l_adv * softplus(-D(G(c), c))
where the comparator C is the encoder up to a conv5-level node and the discriminator D
(5 conv + 2 fc) sees the image and the code. D is trained with the usual logistic loss
and its updates pause while it is too far ahead (its loss under `d_pause` times G's
adversarial loss), as in the paper. Pixel values are RGB in 0..1, so the loss weights
differ from the paper's (given for 0..255 sums).

With `encoder = "own"` the code is not the model's: a small convolutional encoder E' (its
code ReLU'd, `code_dim` wide) is trained together with G on the same losses, so G(E'(x)) is
an autoencoder whose code keeps what the image needs (colour, background), where a
classifier's fc6 may have dropped it (the world network's codes carry no colour: a generator
inverting them draws grey). The comparator is still the model's layer, and D sees the code
without passing gradients to E'. DGN-AM then optimizes in E''s code space (Nguyen et al.:
any generator with a code space can be the prior).

The trainer keeps a checkpoint per epoch (resumable), a PNG sample sheet per epoch
(real images over their reconstructions), and at the end writes an atlas generator
file with the code statistics over the training images.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from atlas.models.layers import extractor
from atlas.models.spec import ModelSpec
from atlas.priors.dgn import center_crop
from atlas.priors.generator import DeePSiM, family_config, to_rgb01
from atlas.priors.genfile import CodeStats, GeneratorBundle, save_generator


@dataclass
class GeneratorTrainConfig:
    code_node: str = "classifier.relu6"
    comparator_node: str = "features.relu5"
    out_size: int | None = None       # generator output; None: the model's input size
    width: int = 32                   # channels after the reshape (halving per upsampling)
    fc_width: int = 256
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3                  # generator (cosine-decayed to 5% over the run)
    lr_d: float = 2e-4
    l_img: float = 1.0
    l_feat: float = 1.0
    l_adv: float = 0.01
    d_pause: float = 0.1
    d_width: int = 16
    flip: bool = True
    seed: int = 0
    encoder: str = "model"            # "model": invert code_node of the model; "own": an encoder trained with G
    code_dim: int = 128               # the own encoder's code width (encoder = "own")

    def __post_init__(self) -> None:
        if self.encoder not in ("model", "own"):
            raise ValueError(f"encoder must be 'model' or 'own', got {self.encoder!r}")


class OwnEncoder(nn.Module):
    """The image (0..1) to a ReLU'd code: stride-2 4x4 convolutions (32, 64, 128 channels,
    leaky ReLU 0.2) down to 4x4, then a linear layer. Non-negative codes, so DGN-AM's
    [0, mean + 3 std] clipping applies as to a ReLU'd fc6."""

    def __init__(self, code_dim: int, size: int):
        super().__init__()
        layers, prev, side, width = [], 3, size, 32
        while side > 4:
            layers += [nn.Conv2d(prev, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            prev, side, width = width, side // 2, min(2 * width, 256)
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(prev * side * side, code_dim)
        for m in self.modules():  # He init: codes of order 1 from the start (torch's default gives ~0.01)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2 if isinstance(m, nn.Conv2d) else 0.0)
                nn.init.zeros_(m.bias)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(torch.flatten(self.convs(x01 * 2 - 1), 1)))


class Discriminator(nn.Module):
    """5 convolutions on the image, global average pooling, then 2 linear layers on
    [image features, code]."""

    def __init__(self, code_dim: int, width: int = 16):
        super().__init__()
        w = width
        layers, prev = [], 3
        for out, stride in ((w, 1), (2 * w, 2), (2 * w, 1), (4 * w, 2), (4 * w, 2)):
            layers += [nn.Conv2d(prev, out, 3, stride, 1), nn.LeakyReLU(0.2)]
            prev = out
        self.convs = nn.Sequential(*layers)
        self.fc1 = nn.Linear(prev + code_dim, 4 * w)
        self.fc2 = nn.Linear(4 * w, 1)

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.convs(image).mean((2, 3))
        h = F.leaky_relu(self.fc1(torch.cat([h, code], 1)), 0.2)
        return self.fc2(h).squeeze(1)


class GeneratorTrainer:
    """One training step at a time; `state_dict` / `load_state_dict` for resuming."""

    def __init__(self, model: nn.Module, spec: ModelSpec, cfg: GeneratorTrainConfig,
                 total_steps: int, device: torch.device | str = "cpu"):
        self.cfg, self.spec, self.device = cfg, spec, torch.device(device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.comparator = extractor(model, [cfg.comparator_node]).to(self.device).eval()
        self.out_size = cfg.out_size or spec.input_size
        self.encoder = self.own = None  # the model's code and comparator nodes, or the own encoder
        if cfg.encoder == "own":
            torch.manual_seed(cfg.seed + 1)
            self.own = OwnEncoder(cfg.code_dim, self.out_size).to(self.device)
            code_dim = cfg.code_dim
        else:
            self.encoder = extractor(model, [cfg.code_node, cfg.comparator_node]).to(self.device).eval()
            with torch.no_grad():
                probe = self.encoder(torch.zeros(1, 3, spec.input_size, spec.input_size, device=self.device))
            code_dim = probe[cfg.code_node].flatten(1).shape[1]
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1)
        gcfg = family_config(code_dim, self.out_size, cfg.width, cfg.fc_width)
        self.G = DeePSiM(gcfg).init_weights(self.gen).to(self.device)
        last = getattr(self.G, self.G.conv_names[-1])
        with torch.no_grad():  # start from gray images rather than from large random ones
            last.weight.mul_(0.1)
            last.bias.fill_(0.5 if gcfg.output == "rgb01" else 0.0)
        torch.manual_seed(cfg.seed)  # D's default init; G's init above is explicit
        self.D = Discriminator(code_dim, cfg.d_width).to(self.device)
        g_params = list(self.G.parameters()) + (list(self.own.parameters()) if self.own is not None else [])
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
        self.total_steps = max(1, total_steps)
        self.step_count = 0
        self.feat_var: float | None = None
        self.d_updates = 0
        # under torchrun: G and D wrapped for gradient averaging; G and D stay the plain modules
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.G_step, self.D_step, self.own_step = self.G, self.D, self.own
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_step = DDP(self.G, device_ids=ids)
            self.D_step = DDP(self.D, device_ids=ids)
            if self.own is not None:
                self.own_step = DDP(self.own, device_ids=ids)

    def _mean(self, *values: torch.Tensor) -> list[float]:
        """The mean over ranks of scalar tensors (themselves in one process), so that every
        rank takes the same decisions."""
        if self.world_size == 1:
            return [float(v.detach()) for v in values]
        t = torch.stack([v.detach().float().reshape(()) for v in values]).to(self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def _normalize(self, x01: torch.Tensor) -> torch.Tensor:
        return (center_crop(x01, self.spec.input_size) - self.mean) / self.std

    @torch.no_grad()
    def _comparator_features(self, x01: torch.Tensor) -> torch.Tensor:
        """The comparator's features of real images: the targets of the feature loss."""
        return self.comparator(self._normalize(x01))[self.cfg.comparator_node]

    @torch.no_grad()
    def encode(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (B, D) and comparator features of images (B, 3, out, out) in 0..1."""
        if self.own is not None:
            return self.own(x01), self._comparator_features(x01)
        out = self.encoder(self._normalize(x01))
        return out[self.cfg.code_node].flatten(1), out[self.cfg.comparator_node]

    def reconstruct(self, x01: torch.Tensor) -> torch.Tensor:
        code, _ = self.encode(x01)
        return to_rgb01(self.G(code), self.G.cfg.output)

    @torch.no_grad()
    def reconstruction_loss(self, x01: torch.Tensor) -> float:
        """Mean squared pixel error of G(E(x)) against x (0..1 units)."""
        self.G.eval()
        loss = F.mse_loss(self.reconstruct(x01), x01).item()
        self.G.train()
        return loss

    def _lr_factor(self) -> float:
        t = min(1.0, self.step_count / self.total_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

    def step(self, x01: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        x01 = x01.to(self.device)
        if self.own is None:
            code, feat_real = self.encode(x01)
        else:  # the own encoder learns with G
            feat_real, code = self._comparator_features(x01), self.own_step(x01)
        if self.feat_var is None:
            self.feat_var = self._mean(feat_real.var().clamp(min=1e-8))[0]
        for group in self.opt_g.param_groups:
            group["lr"] = cfg.lr * self._lr_factor()
        fake = to_rgb01(self.G_step(code), self.G.cfg.output)
        l_img = F.mse_loss(fake, x01)
        feat_fake = self.comparator(self._normalize(fake))[cfg.comparator_node]
        l_feat = F.mse_loss(feat_fake, feat_real) / self.feat_var
        loss = cfg.l_img * l_img + cfg.l_feat * l_feat
        l_adv = torch.zeros((), device=self.device)
        if cfg.l_adv > 0:
            for p in self.D.parameters():
                p.requires_grad_(False)
            l_adv = F.softplus(-self.D(fake, code.detach())).mean()
            loss = loss + cfg.l_adv * l_adv
            for p in self.D.parameters():
                p.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        l_d = torch.zeros(())
        if cfg.l_adv > 0:
            if self.world_size > 1:  # one forward of the wrapped D per backward
                c = code.detach()
                both = self.D_step(torch.cat([x01, fake.detach()]), torch.cat([c, c]))
                l_d = F.softplus(-both[:len(x01)]).mean() + F.softplus(both[len(x01):]).mean()
            else:
                c = code.detach()
                l_d = F.softplus(-self.D(x01, c)).mean() + F.softplus(self.D(fake.detach(), c)).mean()
            d_now, adv_now = self._mean(l_d, l_adv)  # all ranks update D, or none
            if d_now >= cfg.d_pause * adv_now:  # pause D while it is far ahead
                self.opt_d.zero_grad(set_to_none=True)
                l_d.backward()
                self.opt_d.step()
                self.d_updates += 1
        self.step_count += 1
        return {"loss": loss.item(), "img": l_img.item(), "feat": l_feat.item(), "adv": l_adv.item(),
                "d": l_d.item()}

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                **({"own": self.own.state_dict()} if self.own is not None else {}),
                "opt_d": self.opt_d.state_dict(), "step": self.step_count, "feat_var": self.feat_var,
                "d_updates": self.d_updates, "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.own is not None:
            self.own.load_state_dict(state["own"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step_count, self.feat_var = int(state["step"]), state["feat_var"]
        self.d_updates = int(state.get("d_updates", 0))
        self.gen.set_state(state["rng"])


def to_tensor01(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255.0


def sample_sheet(path: Path, real01: torch.Tensor, fake01: torch.Tensor, scale: int = 3) -> None:
    """PNG: real images on the top row, their reconstructions below."""
    def row(t: torch.Tensor) -> np.ndarray:
        a = (t.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return np.concatenate(list(a), axis=1)
    sheet = np.concatenate([row(real01), row(fake01)], axis=0)
    img = Image.fromarray(sheet)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def _barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train_generator(model: nn.Module, spec: ModelSpec, train_pixels: np.ndarray, held_pixels: np.ndarray,
                    cfg: GeneratorTrainConfig, out: Path, work_dir: Path, encoder_info: dict,
                    resume: bool = True, device: torch.device | str = "cpu",
                    log: Callable[[str], None] = print, time_budget: float | None = None) -> GeneratorBundle | None:
    """Train on uint8 images (N, S, S, 3) at the generator's output size; write `out`.

    `work_dir` holds checkpoint.pt (one per epoch, reused when `resume`), samples/epoch_NN.png
    and history.json. Under torchrun (a process group initialized by the caller) training is
    data-parallel: every rank takes its share of each batch (same batch size in all), the
    gradients of G and D are averaged (DistributedDataParallel), and rank 0 alone evaluates,
    writes the checkpoints and the generator file (other ranks return None).

    `time_budget` (seconds): once the first epoch of this call is timed, the number of
    epochs is cut to what fits in the budget (the learning-rate schedule is then spread over
    the epochs kept; the file's train_config records them)."""
    cfg = replace(cfg)  # epochs may shrink below; the caller's config stays as given
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "samples").mkdir(exist_ok=True)
    steps_per_epoch = max(1, len(train_pixels) // cfg.batch_size)
    trainer = GeneratorTrainer(model, spec, cfg, cfg.epochs * steps_per_epoch, device)
    ckpt = work_dir / "checkpoint.pt"
    history: list[dict] = []
    start_epoch = 0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        saved = {k: v for k, v in state.get("config", {}).items() if k != "epochs"}
        if saved != {k: v for k, v in asdict(cfg).items() if k != "epochs"}:
            raise ValueError(f"{ckpt} was made with other settings (only epochs may change); "
                             "pass --no-resume or another --work-dir")
        trainer.load_state_dict(state["trainer"])
        history, start_epoch = state["history"], state["epoch"]
        log(f"resuming from {ckpt} at epoch {start_epoch}")
    data = to_tensor01(train_pixels)
    held = to_tensor01(held_pixels).to(trainer.device)
    sheet_real = held[:16]
    rank, size = (dist.get_rank(), dist.get_world_size()) if trainer.world_size > 1 else (0, 1)
    t0 = time.time()
    epoch = start_epoch - 1
    while epoch + 1 < cfg.epochs:
        epoch += 1
        if time_budget and epoch == start_epoch + 1:
            per_epoch, = trainer._mean(torch.tensor(time.time() - t0))  # every rank takes the same decision
            fit = start_epoch + max(1, int(time_budget // max(per_epoch, 1e-9)))
            if fit < cfg.epochs:
                log(f"time budget {time_budget:.0f} s at {per_epoch:.1f} s an epoch: {fit} epochs, not {cfg.epochs}")
                cfg.epochs = fit
                trainer.total_steps = max(1, fit * steps_per_epoch)
                if epoch >= cfg.epochs:
                    break
        perm = torch.randperm(len(data), generator=trainer.gen)
        bar = tqdm(range(steps_per_epoch), desc=f"generator epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=rank != 0)
        run: dict[str, float] = {}
        for s in bar:
            x = data[perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]]
            if cfg.flip:
                flip = torch.rand(len(x), generator=trainer.gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            # data-parallel: each rank takes its share of the same batch, gradients are averaged
            losses = trainer.step(x[rank::size])
            run = {k: (0.95 * run[k] + 0.05 * v) if k in run else v for k, v in losses.items()}
            bar.set_postfix(img=f"{run['img']:.4f}", feat=f"{run['feat']:.3f}", adv=f"{run['adv']:.2f}")
        if rank != 0:  # rank 0 alone evaluates and writes; the others wait for the checkpoint
            _barrier(trainer.world_size)
            continue
        rec = float(np.mean([trainer.reconstruction_loss(held[i:i + 256]) for i in range(0, len(held), 256)]))
        history.append({"epoch": epoch + 1, **{k: round(v, 5) for k, v in run.items()},
                        "held_out_mse": round(rec, 5), "d_updates": trainer.d_updates,
                        "seconds": round(time.time() - t0, 1), "processes": size})
        log(f"epoch {epoch + 1}: held-out reconstruction MSE {rec:.5f} (train img {run['img']:.5f}, "
            f"feat {run['feat']:.4f}, adv {run['adv']:.3f}, D updates {trainer.d_updates})")
        trainer.G.eval()
        with torch.no_grad():
            sample_sheet(work_dir / "samples" / f"epoch_{epoch + 1:02d}.png", sheet_real,
                         trainer.reconstruct(sheet_real))
        trainer.G.train()
        _save_atomic({"trainer": trainer.state_dict(), "history": history, "epoch": epoch + 1,
                      "config": asdict(cfg)}, ckpt)
        _barrier(trainer.world_size)
    if rank != 0:
        return None
    trainer.G.eval()
    codes = torch.cat([trainer.encode(data[i:i + 512].to(trainer.device))[0].cpu()
                       for i in range(0, len(data), 512)])
    stats = CodeStats.from_codes(codes, source=f"{len(data)} training images")
    net = DeePSiM(trainer.G.cfg)
    net.load_state_dict({k: v.cpu() for k, v in trainer.G.state_dict().items()})
    net.eval().requires_grad_(False)
    # with its own encoder, `model` and `weights` name the network it was trained for (the comparator)
    own = {"encoder": "own (trained with the generator; not in this file)"} if trainer.own is not None else {}
    bundle = GeneratorBundle(net, stats, {**encoder_info, **own,
                                          "code_node": cfg.code_node if trainer.own is None else "own encoder's code",
                                          "comparator_node": cfg.comparator_node,
                                          "input_size": spec.input_size},
                             {"train_config": asdict(cfg), "history": history, "train_images": len(data),
                              "held_out_mse": history[-1]["held_out_mse"] if history else None})
    save_generator(out, bundle)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return bundle

