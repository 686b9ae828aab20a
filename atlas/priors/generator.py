"""The DeePSiM generator family (Dosovitskiy & Brox 2016): a code -> an image.

`FC6_FULL` is the released fc6 generator's layer list, named so that the PyTorch port's
state dict (`upconvGAN_fc6.pt`: keys `defc7.weight` ... `deconv0.bias`) loads unchanged.
`family_config` makes the same design narrower and smaller for small networks (the demo's
32x32 world network). Every layer is a transposed convolution or a linear map with
LeakyReLU(0.3) between them and none after the last, as released.

A generator's raw output lives in its own pixel convention: "caffe_bgr" (BGR, ImageNet
mean subtracted, 0..255, the released weights) or "rgb01" (RGB in 0..1, ours).
`to_rgb01` maps either to RGB in 0..1; the DGN optimizer differentiates through it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

CAFFE_BGR_MEAN = (104.0, 117.0, 123.0)  # act_max.py's ImageNet mean, BGR order
OUTPUTS = ("caffe_bgr", "rgb01")


@dataclass(frozen=True)
class GeneratorConfig:
    """The layer list: linear layers, a reshape to (channels, size, size), then
    transposed convolutions given as (name, out_channels, kernel, stride)."""
    code_dim: int
    fc: tuple[tuple[str, int], ...]
    start_channels: int
    start_size: int
    convs: tuple[tuple[str, int, int, int], ...]
    output: str = "rgb01"
    slope: float = 0.3

    @property
    def out_size(self) -> int:
        size = self.start_size
        for _, _, kernel, stride in self.convs:
            size = (size - 1) * stride - 2 * ((kernel - stride) // 2) + kernel
        return size

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "GeneratorConfig":
        return GeneratorConfig(code_dim=int(d["code_dim"]), fc=tuple((str(n), int(w)) for n, w in d["fc"]),
                               start_channels=int(d["start_channels"]), start_size=int(d["start_size"]),
                               convs=tuple((str(n), int(c), int(k), int(s)) for n, c, k, s in d["convs"]),
                               output=str(d.get("output", "rgb01")), slope=float(d.get("slope", 0.3)))


FC6_FULL = GeneratorConfig(
    code_dim=4096,
    fc=(("defc7", 4096), ("defc6", 4096), ("defc5", 4096)),
    start_channels=256, start_size=4,
    convs=(("deconv5", 256, 4, 2), ("conv5_1", 512, 3, 1), ("deconv4", 256, 4, 2), ("conv4_1", 256, 3, 1),
           ("deconv3", 128, 4, 2), ("conv3_1", 128, 3, 1), ("deconv2", 64, 4, 2), ("deconv1", 32, 4, 2),
           ("deconv0", 3, 4, 2)),
    output="caffe_bgr",
)


def family_config(code_dim: int, out_size: int, width: int = 64, fc_width: int | None = None,
                  output: str = "rgb01") -> GeneratorConfig:
    """A smaller member of the family: three linear layers, then per upsampling stage a
    4x4 stride-2 deconvolution and a 3x3 one, channels halving from `width`, and a final
    3x3 layer to 3 channels. The start size is the largest out_size / 2^n that is >= 4."""
    n_up = 0
    while out_size % (2 ** (n_up + 1)) == 0 and out_size // 2 ** (n_up + 1) >= 4:
        n_up += 1
    if n_up == 0:
        raise ValueError(f"generator out_size {out_size} must be an even number of at least 8 (e.g. 32, 36, 64, 256)")
    start = out_size // 2 ** n_up
    fc_width = fc_width or 4 * code_dim
    fc = (("defc7", fc_width), ("defc6", fc_width), ("defc5", width * start * start))
    convs = []
    channels = width
    for j in range(n_up):
        stage = 5 - j
        convs.append((f"deconv{stage}", channels, 4, 2))
        convs.append((f"conv{stage}_1", channels, 3, 1))
        channels = max(8, channels // 2)
    convs.append(("deconv0", 3, 3, 1))
    return GeneratorConfig(code_dim=code_dim, fc=tuple(fc), start_channels=width, start_size=start,
                           convs=tuple(convs), output=output)


class DeePSiM(nn.Module):
    """The generator network. Parameters are top-level modules named as in the release."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        if cfg.output not in OUTPUTS:
            raise ValueError(f"generator output {cfg.output!r} is not one of {OUTPUTS}")
        if cfg.fc[-1][1] != cfg.start_channels * cfg.start_size ** 2:
            raise ValueError(f"last linear width {cfg.fc[-1][1]} != {cfg.start_channels}x{cfg.start_size}^2")
        self.cfg = cfg
        self.fc_names = [name for name, _ in cfg.fc]
        self.conv_names = [name for name, *_ in cfg.convs]
        prev = cfg.code_dim
        for name, width in cfg.fc:
            self.add_module(name, nn.Linear(prev, width))
            prev = width
        prev = cfg.start_channels
        for name, out, kernel, stride in cfg.convs:
            self.add_module(name, nn.ConvTranspose2d(prev, out, kernel, stride, (kernel - stride) // 2))
            prev = out
        self.act = nn.LeakyReLU(cfg.slope)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(B, code_dim) -> (B, 3, out, out) in the generator's own pixel convention."""
        x = code
        for name in self.fc_names:
            x = self.act(getattr(self, name)(x))
        x = x.view(-1, self.cfg.start_channels, self.cfg.start_size, self.cfg.start_size)
        last = self.conv_names[-1]
        for name in self.conv_names:
            x = getattr(self, name)(x)
            if name != last:
                x = self.act(x)
        return x

    def init_weights(self, gen: torch.Generator) -> "DeePSiM":
        """Seeded initialization (Kaiming for the leaky slope, zero biases)."""
        gain = math.sqrt(2.0 / (1 + self.cfg.slope ** 2))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
                fan_in = m.weight.shape[1] if isinstance(m, nn.Linear) else \
                    m.weight.shape[0] * m.weight.shape[2] * m.weight.shape[3] // \
                    (m.stride[0] * m.stride[1])
                with torch.no_grad():
                    m.weight.normal_(0.0, gain / math.sqrt(fan_in), generator=gen)
                    m.bias.zero_()
        return self

    def macs(self) -> int:
        """Multiply-accumulates of one forward pass (for FLOP accounting)."""
        total = sum(getattr(self, n).weight.numel() for n in self.fc_names)
        size = self.cfg.start_size
        for name, out, kernel, stride in self.cfg.convs:
            m = getattr(self, name)
            total += size * size * m.weight.numel()  # every input pixel scatters a k*k*out block
            size = (size - 1) * stride - 2 * ((kernel - stride) // 2) + kernel
        return total


def to_rgb01(raw: torch.Tensor, output: str) -> torch.Tensor:
    """A generator's raw output as RGB in 0..1 (not clamped; the net sees what G makes)."""
    if output == "rgb01":
        return raw
    if output == "caffe_bgr":
        mean = torch.tensor(CAFFE_BGR_MEAN, device=raw.device, dtype=raw.dtype).view(1, 3, 1, 1)
        return (raw + mean).flip(1) / 255.0
    raise ValueError(f"unknown generator output convention {output!r}")


def from_rgb01(img: torch.Tensor, output: str) -> torch.Tensor:
    """Inverse of `to_rgb01`: RGB 0..1 images into the generator's pixel convention."""
    if output == "rgb01":
        return img
    if output == "caffe_bgr":
        mean = torch.tensor(CAFFE_BGR_MEAN, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
        return img.flip(1) * 255.0 - mean
    raise ValueError(f"unknown generator output convention {output!r}")
