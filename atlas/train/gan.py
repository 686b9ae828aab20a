"""An unconditional GAN whose generator serves as a DGN-AM prior (issue 17).

DGN-AM needs a generator with a code space, not necessarily one that inverts the
visualized network (Nguyen et al. 2016 use the CaffeNet fc6 generator for other networks).
A generator that inverts the small CIFAR-10 network's 256-d fc6 can only draw what that
code keeps (class prototypes); a GAN trained on the photos themselves draws from the
photos' distribution, and DGN-AM then searches its latent space.

- G: a member of the DeePSiM family (`family_config`, the same layer list and file format
  as the inverting generators), so DGN-AM, the generator file and the featvis stage need
  nothing new.
- The latent is ReLU(N(0, I)): non-negative like an fc6 code, so act_max.py's clipping to
  [0, ub] (ub = mean + 3 std of the codes, stored in the file) keeps DGN-AM's codes inside
  the region G was trained on.
- D: a CNN with spectral normalization (Miyato et al. 2018, the "standard CNN" of SNGAN),
  hinge loss, Adam (0.5, 0.999), one D step per G step.
- The generator written is an exponential moving average of G's weights (Karras et al.;
  Yazici et al. 2019), which draws cleaner images than the last iterate.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from atlas.priors.generator import DeePSiM, family_config
from atlas.priors.genfile import CodeStats, GeneratorBundle, save_generator
from atlas.train.generator import sample_sheet, to_tensor01


@dataclass
class GANConfig:
    code_dim: int = 128
    out_size: int = 32
    width: int = 128          # generator channels after the reshape
    fc_width: int = 256
    d_width: int = 64
    steps: int = 20000        # G steps (fewer when the time budget ends first)
    batch_size: int = 128
    lr: float = 2e-4          # generator
    lr_d: float = 2e-4        # discriminator (4x lr: Heusel et al.'s two time-scale rule)
    ema: float = 0.999
    flip: bool = True
    seed: int = 0


def latent(n: int, dim: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """ReLU(N(0, I)) codes: the distribution G is trained on."""
    return torch.randn(n, dim, generator=gen).clamp_(min=0)


class SNDiscriminator(nn.Module):
    """SNGAN's standard CNN: 3x3 / 4x4-stride-2 pairs at w, 2w, 4w, a 3x3 at 8w, then linear."""

    def __init__(self, width: int = 64, size: int = 32):
        super().__init__()
        w = width
        spec = [(3, w, 3, 1), (w, w, 4, 2), (w, 2 * w, 3, 1), (2 * w, 2 * w, 4, 2), (2 * w, 4 * w, 3, 1),
                (4 * w, 4 * w, 4, 2), (4 * w, 8 * w, 3, 1)]
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(i, o, k, s, 1)) for i, o, k, s in spec)
        self.fc = spectral_norm(nn.Linear(8 * w * (size // 8) ** 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2 - 1  # 0..1 images to -1..1
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
        return self.fc(x.flatten(1)).squeeze(1)


def train_gan(pixels: np.ndarray, cfg: GANConfig, out: Path, work_dir: Path, time_budget: float | None = None,
              device: torch.device | str = "cpu", log: Callable[[str], None] = print) -> GeneratorBundle:
    """Train on uint8 images (N, S, S, 3), S = cfg.out_size; write the EMA generator to `out`
    with the statistics of its latent. Stops after cfg.steps or `time_budget` seconds."""
    device = torch.device(device)
    if pixels.shape[1:] != (cfg.out_size, cfg.out_size, 3):
        raise ValueError(f"images are {pixels.shape[1:]}, the generator draws {cfg.out_size}x{cfg.out_size}x3")
    work_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    gcfg = family_config(cfg.code_dim, cfg.out_size, cfg.width, cfg.fc_width)
    G = DeePSiM(gcfg).init_weights(gen)
    last = getattr(G, G.conv_names[-1])
    with torch.no_grad():  # start from gray images
        last.weight.mul_(0.1)
        last.bias.fill_(0.5)
    G = G.to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    D = SNDiscriminator(cfg.d_width, cfg.out_size).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
    data = to_tensor01(pixels).to(device)
    fixed = latent(16, cfg.code_dim, gen).to(device)
    history: list[dict] = []
    t0 = time.time()
    run = {"d": 0.0, "g": 0.0}
    step = 0
    while step < cfg.steps and not (step and time_budget and time.time() - t0 > time_budget):
        idx = torch.randint(0, len(data), (cfg.batch_size,), generator=gen).to(device)
        x = data[idx]
        if cfg.flip:
            flip = (torch.rand(len(x), generator=gen) < 0.5).to(device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        z = latent(cfg.batch_size, cfg.code_dim, gen).to(device)
        fake = G(z)
        l_d = F.relu(1 - D(x)).mean() + F.relu(1 + D(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()
        l_g = -D(fake).mean()
        opt_g.zero_grad(set_to_none=True)
        l_g.backward()
        opt_g.step()
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - cfg.ema)
        step += 1
        if step % 500 == 0 or step == cfg.steps:
            run = {"d": l_d.item(), "g": l_g.item()}
            history.append({"step": step, **{k: round(v, 4) for k, v in run.items()},
                            "seconds": round(time.time() - t0, 1)})
            log(f"step {step}: D hinge {run['d']:.3f}, G {run['g']:.3f}, {time.time() - t0:.0f} s")
        if step % 2000 == 0:
            with torch.no_grad():
                sample_sheet(work_dir / f"samples_{step:06d}.png", G(fixed).clamp(0, 1), G_ema(fixed).clamp(0, 1))
    with torch.no_grad():
        sample_sheet(work_dir / "samples_final.png", G(fixed).clamp(0, 1), G_ema(fixed).clamp(0, 1))
    codes = latent(50000, cfg.code_dim, torch.Generator().manual_seed(cfg.seed + 1))
    stats = CodeStats.from_codes(codes, source="50000 draws of ReLU(N(0, I))")
    net = DeePSiM(gcfg)
    net.load_state_dict({k: v.cpu() for k, v in G_ema.state_dict().items()})
    net.eval().requires_grad_(False)
    bundle = GeneratorBundle(net, stats, {"model": "none (unconditional GAN)", "code_node": "latent ReLU(N(0, I))",
                                          "input_size": cfg.out_size},
                             {"train_config": {**asdict(cfg), "steps": step}, "history": history,
                              "train_images": len(data), "kind": "gan", "seconds": round(time.time() - t0, 1),
                              "device": str(device)})
    save_generator(out, bundle)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {step} steps")
    return bundle
