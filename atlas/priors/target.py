"""The network under study, as the priors see it: RGB images in 0..1 in, activations out.

Preprocessing belongs to the model (its spec's mean and std); the feature extractor is
pruned past the nodes an objective reads, so optimizing a conv1 unit runs conv1 only, and
its eval-mode batch norms are folded into the convolutions before them, max pools moved
ahead of the ReLUs that feed them, and a strided first convolution computed as space-to-depth
+ a stride-1 convolution (the same function, fewer or faster ops: atlas/models/fold.py).
`compute_dtype` is the autocast dtype of the optimization steps (`featvis_dtype`);
activations that are stored or compared are measured in `dtype`.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from atlas.config import FEATVIS_DTYPES
from atlas.models.fold import fold_batchnorm, pool_before_relu, space_to_depth
from atlas.models.layers import Extractor, extractor
from atlas.models.spec import ModelSpec

_LOWP_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                 nn.Linear)   # the modules whose ops autocast runs in the lower precision


def bf16_native() -> bool:
    """Whether this CPU runs bfloat16 convolutions and matmuls natively (AVX512-BF16 or AMX):
    without that, oneDNN emulates them and bfloat16 is slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compute_dtype(name: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype of the image priors' steps for `featvis_dtype` = `name`; None: float32.
    "auto" is bfloat16 on a CPU with native bfloat16 (measured 1.5-1.9x faster per step on the
    CIFAR-10 network, notes/priors.md) and float32 elsewhere (on a GPU it was not measured)."""
    if name not in FEATVIS_DTYPES:
        raise ValueError(f"featvis_dtype must be one of {', '.join(FEATVIS_DTYPES)}; got {name!r}")
    if name == "bfloat16":
        return torch.bfloat16
    if name == "auto" and torch.device(device).type == "cpu" and bf16_native():
        return torch.bfloat16
    return None


class NetTarget:
    """`target(images01, nodes)` -> {node: activation}; images are (B, 3, S, S), S = input_size."""

    def __init__(self, model: nn.Module, spec: ModelSpec, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False,
                 compute_dtype: torch.dtype | None = None, fold: bool = True):
        if channels_last:  # NHWC convolutions and pooling: several times faster on CPU (a private copy)
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.model, self.spec, self.channels_last = model, spec, channels_last
        self.compute_dtype, self.fold = compute_dtype, fold
        self.device, self.dtype = torch.device(device), dtype
        self.input_size = spec.input_size
        self.mean = torch.tensor(spec.mean, device=self.device, dtype=dtype).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device, dtype=dtype).view(1, 3, 1, 1)
        self._extractors: dict[tuple[str, ...], nn.Module] = {}
        self._lowp: dict[tuple[str, ...], nn.Module] = {}

    def normalize(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 - self.mean) / self.std

    def net_for(self, nodes: set[str] | list[str]) -> nn.Module:
        key = tuple(sorted(nodes))
        if key not in self._extractors:
            net = extractor(self.model, list(key)).to(self.device, self.dtype).eval()
            if self.fold and isinstance(net, Extractor):   # the same function, fewer ops
                pool_before_relu(net.inner)
                changed = fold_batchnorm(net.inner) + space_to_depth(net.inner)
                if changed and self.channels_last:
                    net.to(memory_format=torch.channels_last)   # the new convolutions' weights
            self._extractors[key] = net
        return self._extractors[key]

    def _lowp_for(self, key: tuple[str, ...]) -> nn.Module:
        """net_for's network with its convolution and linear weights stored in `compute_dtype`:
        autocast casts frozen weights again on every call (it caches only leaves that need
        a gradient), which cost AlexNet's fc6 a 150 MB copy per step. Under autocast this
        copy computes exactly what the float32 network computes under autocast."""
        if key not in self._lowp:
            net = copy.deepcopy(self.net_for(key)).eval()
            for m in net.modules():
                if isinstance(m, _LOWP_MODULES):
                    m.to(self.compute_dtype)
            self._lowp[key] = net
        return self._lowp[key]

    def __call__(self, images01: torch.Tensor, nodes: set[str] | list[str],
                 steps: bool = False) -> dict[str, torch.Tensor]:
        """Activations for images in 0..1; `steps`: in the optimization steps' precision
        (`compute_dtype` autocast; the values come back in the images' dtype)."""
        if images01.shape[-1] != self.input_size or images01.shape[-2] != self.input_size:
            raise ValueError(f"images are {tuple(images01.shape[-2:])}, model {self.spec.name} takes "
                             f"{self.input_size}x{self.input_size}")
        x = self.normalize(images01)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not steps or self.compute_dtype is None:
            return self.net_for(nodes)(x)
        with torch.autocast(self.device.type, dtype=self.compute_dtype):
            acts = self._lowp_for(tuple(sorted(nodes)))(x)
        return {k: v.to(images01.dtype) if torch.is_tensor(v) else v for k, v in acts.items()}

    @torch.no_grad()
    def activations_of_uint8(self, images: torch.Tensor, objective) -> torch.Tensor:
        """The objective's values for stored uint8 images (B, H, W, 3): what the atlas shows."""
        x = images.to(self.device).permute(0, 3, 1, 2).to(self.dtype) / 255.0
        with torch.autocast(self.device.type, enabled=False):
            return objective(self(x, objective.nodes)).float()


def to_uint8(images01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in 0..1 -> uint8 (B, H, W, 3), clamped and rounded."""
    return (images01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
