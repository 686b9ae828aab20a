"""Generator weight files: atlas's own format, the PyTorch port, and the Caffe release.

An atlas generator file (`atlas-generator/1`, a torch.save'd dict) carries what DGN-AM
needs besides the weights: the layer list, the code statistics over real images (mean,
std and the clipping bound ub = mean + 3 std per component), and which encoder layer the
generator inverts (model, weights, code node, comparator node).

The published PyTorch port `upconvGAN_fc6.pt` is a bare state dict of the fc6 layer list
(`load_port_state_dict`); the original release is a Caffe model (`caffe_state_dict`).
Neither carries code statistics, so `convert` joins them with statistics into an atlas file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from atlas.priors.caffe_proto import read_caffemodel
from atlas.priors.generator import FC6_FULL, DeePSiM, GeneratorConfig, to_rgb01

FORMAT = "atlas-generator/1"


@dataclass
class CodeStats:
    """Per-component statistics of the code over real images; the DGN clip range is [0, ub]."""
    ub: torch.Tensor
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    source: str = ""

    @staticmethod
    def from_codes(codes: torch.Tensor, source: str = "") -> "CodeStats":
        """mean, std over images (rows) and ub = mean + 3 std (act_max.py's '3x' bound)."""
        codes = codes.double()
        mean, std = codes.mean(0), codes.std(0, unbiased=False)
        return CodeStats(ub=(mean + 3 * std).float(), mean=mean.float(), std=std.float(), source=source)

    def to_dict(self) -> dict:
        return {"ub": self.ub.cpu(), "mean": None if self.mean is None else self.mean.cpu(),
                "std": None if self.std is None else self.std.cpu(), "source": self.source}

    @staticmethod
    def from_dict(d: dict) -> "CodeStats":
        return CodeStats(ub=d["ub"].float(), mean=d.get("mean"), std=d.get("std"), source=d.get("source", ""))


def read_upper_bounds(path: str | Path) -> CodeStats:
    """act_max.py's bound file (e.g. act_range/3x/fc6.txt): upper bounds separated by spaces or lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bound file not found: {path}")
    try:
        values = np.array(path.read_text().split(), dtype=np.float32)
    except ValueError as exc:
        raise ValueError(f"{path}: bound file must hold numbers only: {exc}") from exc
    return CodeStats(ub=torch.from_numpy(values), source=f"bounds:{path.name}")


@dataclass
class GeneratorBundle:
    """A generator ready for DGN-AM: the network, its code statistics and its provenance."""
    net: DeePSiM
    stats: CodeStats
    encoder: dict = field(default_factory=dict)  # model, weights, code_node, comparator_node, input_size
    meta: dict = field(default_factory=dict)

    @property
    def cfg(self) -> GeneratorConfig:
        return self.net.cfg

    @property
    def code_dim(self) -> int:
        return self.cfg.code_dim

    def images(self, code: torch.Tensor) -> torch.Tensor:
        """Codes -> RGB images in 0..1 (unclamped), (B, 3, out, out)."""
        return to_rgb01(self.net(code), self.cfg.output)

    def to(self, device: torch.device | str) -> "GeneratorBundle":
        self.net.to(device)
        self.stats = CodeStats(ub=self.stats.ub.to(device),
                               mean=None if self.stats.mean is None else self.stats.mean.to(device),
                               std=None if self.stats.std is None else self.stats.std.to(device),
                               source=self.stats.source)
        return self


def save_generator(path: str | Path, bundle: GeneratorBundle) -> None:
    """Write an atlas generator file atomically."""
    if bundle.stats.ub.numel() != bundle.code_dim:
        raise ValueError(f"code statistics have {bundle.stats.ub.numel()} components, the code {bundle.code_dim}")
    payload = {"format": FORMAT, "config": bundle.cfg.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in bundle.net.state_dict().items()},
               "code_stats": bundle.stats.to_dict(), "encoder": dict(bundle.encoder), "meta": dict(bundle.meta)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _read(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"generator file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ValueError(f"cannot read generator file {path}: {exc}") from exc


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> GeneratorBundle:
    """Load an atlas generator file (eval mode, frozen)."""
    path = Path(path)
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and any(str(k).endswith("defc7.weight") for k in payload):
            hint = (" It looks like a bare upconvGAN state dict: convert it with code statistics first, "
                    "e.g. `atlas convert-generator FILE --bounds fc6.txt --out gen.pt`.")
        raise ValueError(f"{path} is not an atlas generator file ({FORMAT}).{hint}")
    cfg = GeneratorConfig.from_dict(payload["config"])
    net = DeePSiM(cfg)
    net.load_state_dict(payload["state_dict"])
    net.eval().requires_grad_(False)
    bundle = GeneratorBundle(net, CodeStats.from_dict(payload["code_stats"]), payload.get("encoder", {}),
                             payload.get("meta", {}))
    if bundle.stats.ub.numel() != cfg.code_dim:
        raise ValueError(f"{path}: {bundle.stats.ub.numel()} code bounds for a {cfg.code_dim}-d code")
    return bundle.to(device)


def _check_shapes(state: dict[str, torch.Tensor], cfg: GeneratorConfig, origin: str) -> None:
    expected = DeePSiM(cfg).state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"{origin}: not the fc6 generator layout (missing {missing[:4]}, unexpected {extra[:4]})")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{origin}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")


def load_port_state_dict(path: str | Path, cfg: GeneratorConfig = FC6_FULL) -> dict[str, torch.Tensor]:
    """The PyTorch port's state dict (`upconvGAN_fc6.pt`), keys as in the release.

    Tolerates the two variants seen in the wild: a `G.` prefix (the wrapper module's
    attribute) and `.1.` inside names (an older export)."""
    path = Path(path)
    payload = _read(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return payload["state_dict"]
    if not isinstance(payload, dict):
        raise ValueError(f"{path} holds no state dict")
    state = {}
    for k, v in payload.items():
        k = str(k)
        if k.startswith("G."):
            k = k[2:]
        state[k.replace(".1.", ".")] = v.float()
    _check_shapes(state, cfg, str(path))
    return state


def caffe_state_dict(path: str | Path, cfg: GeneratorConfig = FC6_FULL) -> dict[str, torch.Tensor]:
    """The Caffe release's weights, rearranged into the port's layout.

    InnerProduct (out, in) and Deconvolution (in, out, k, k) blobs already match
    nn.Linear and nn.ConvTranspose2d; a Convolution layer (stride 1, 'same' padding) is
    turned into the equal transposed convolution (swap in/out, flip the kernel)."""
    layers = read_caffemodel(path)
    state: dict[str, torch.Tensor] = {}
    names = [n for n, _ in cfg.fc] + [n for n, *_ in cfg.convs]
    for name in names:
        if name not in layers:
            raise ValueError(f"{path}: layer {name!r} not found (layers: {', '.join(layers)})")
        kind, blobs = layers[name]
        if len(blobs) != 2:
            raise ValueError(f"{path}: layer {name!r} has {len(blobs)} blobs, expected weight and bias")
        w, b = (torch.from_numpy(np.array(x)) for x in blobs)
        if kind == "Convolution":
            w = w.transpose(0, 1).flip(2, 3)
        elif kind not in ("Deconvolution", "InnerProduct"):
            raise ValueError(f"{path}: layer {name!r} has unsupported type {kind!r}")
        state[f"{name}.weight"], state[f"{name}.bias"] = w.contiguous(), b.reshape(-1)
    _check_shapes(state, cfg, str(path))
    return state


def bundle_from_state(state: dict[str, torch.Tensor], stats: CodeStats, cfg: GeneratorConfig = FC6_FULL,
                      encoder: dict | None = None, meta: dict | None = None) -> GeneratorBundle:
    """Weights plus code statistics -> a bundle (for `convert` and for tests)."""
    net = DeePSiM(cfg)
    net.load_state_dict(state)
    net.eval().requires_grad_(False)
    if stats.ub.numel() != cfg.code_dim:
        raise ValueError(f"{stats.ub.numel()} code bounds for a {cfg.code_dim}-d code")
    return GeneratorBundle(net, stats, encoder or {}, meta or {})


def convert(src: str | Path, stats: CodeStats, out: str | Path, encoder: dict | None = None) -> GeneratorBundle:
    """A port state dict or a Caffe model + code statistics -> an atlas generator file."""
    src = Path(src)
    state = caffe_state_dict(src) if src.suffix == ".caffemodel" else load_port_state_dict(src)
    enc = {"model": "caffenet", "code_node": "fc6", "comparator_node": "pool5", "input_size": 227}
    enc.update(encoder or {})
    bundle = bundle_from_state(state, stats, FC6_FULL, enc, {"converted_from": src.name})
    save_generator(out, bundle)
    return bundle
