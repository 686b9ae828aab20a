"""What every stage gets: the config, the run folder, the device, and lazily built model,
data source and layers. Nothing here is global; a process builds one Context per run."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from atlas.config import Config
from atlas.data.bigsources import ImageNetFolder, TorchvisionImageNet, WebDatasetSource, is_shard_folder
from atlas.data.sources import DataError, FolderSource, Source, TorchvisionSource, WorldSource
from atlas.models import load_model
from atlas.models.layers import LayerRef, list_layers, penultimate, resolve_layers
from atlas.models.registry import get_spec
from atlas.models.spec import ModelSpec
from atlas.resources import weights_path
from atlas.artifacts.store import RunStore, sha256_file


def pick_device(name: str) -> torch.device:
    """'auto' (a GPU when torch sees one), 'cuda' or 'cpu'. On a GPU, cuDNN's autotuner is
    switched on: feature visualization repeats the same shapes hundreds of times, and the
    autotuned kernels made DGN-AM 1.06x faster on an H200 (benchmarks/featvis_speed.py,
    notes/gpu.md)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no GPU; use device = 'auto' or 'cpu'")
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def make_source(cfg: Config) -> Source:
    """The configured data, before unusable images are dropped."""
    if cfg.data == "world":
        return WorldSource(seed=cfg.world_seed, count=cfg.world_count, size=32)
    if cfg.data.startswith("webdataset:"):
        return WebDatasetSource(cfg.data.split(":", 1)[1], limit=cfg.data_limit)
    if cfg.data == "torchvision:ImageNet":
        if not cfg.data_root:
            raise DataError("torchvision:ImageNet needs data_root: the folder with meta.bin and train/ or val/")
        return TorchvisionImageNet(cfg.data_root, split=cfg.data_split, limit=cfg.data_limit)
    if cfg.data.startswith("torchvision:"):
        root = cfg.data_root or str(Path.home() / ".cache" / "atlas" / "datasets")
        return TorchvisionSource(cfg.data.split(":", 1)[1], root, split=cfg.data_split,
                                 download=cfg.data_download, limit=cfg.data_limit)
    path = Path(cfg.data)
    if (path.is_file() and path.suffix == ".tar") or is_shard_folder(path):
        return WebDatasetSource(str(path), limit=cfg.data_limit)
    if not path.is_dir():
        raise DataError(f"data {cfg.data!r} is neither 'world', 'torchvision:NAME', 'webdataset:SHARDS', "
                        f"nor an existing folder")
    return ImageNetFolder(path, split=cfg.data_split, limit=cfg.data_limit)


def build_model(spec: ModelSpec, weights: str | None) -> torch.nn.Module:
    """`load_model`, with every way weights can fail turned into one message naming them."""
    try:
        return load_model(spec, weights)
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:  # noqa: BLE001 - shape mismatches, missing downloads, bad pickles
        what = f"weight file {weights}" if weights not in (None, "random") else f"the default weights of {spec.name!r}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if weights not in (None,) else "; pass --weights FILE or --weights random"
        raise ValueError(f"cannot load {what} into model {spec.name!r}: {first}{hint}") from exc


def weights_identity(spec: ModelSpec, weights: str | None) -> str:
    """A string that changes when the weights change (a file's sha256, or the API's name)."""
    if weights == "random":
        return "random"
    if weights:
        p = Path(weights)
        if not p.is_file():
            raise FileNotFoundError(f"weight file not found: {weights}")
        return "sha256:" + sha256_file(p)
    shipped = weights_path(f"{spec.name}.pt")
    if shipped.is_file():
        return "sha256:" + sha256_file(shipped)
    return f"default:{spec.name}"


@dataclass
class Context:
    cfg: Config
    store: RunStore
    rank: int = 0
    world_size: int = 1
    device_override: torch.device | None = None
    log: list[str] = field(default_factory=list)
    work: dict = field(default_factory=dict)  # the running stage's chunk record (artifacts/chunks.py)

    @cached_property
    def device(self) -> torch.device:
        return self.device_override or pick_device(self.cfg.device)

    @cached_property
    def spec(self) -> ModelSpec:
        spec = get_spec(self.cfg.model)
        return spec.at_input_size(self.cfg.input_size) if self.cfg.input_size else spec

    @cached_property
    def weights_id(self) -> str:
        return weights_identity(self.spec, self.cfg.weights)

    @cached_property
    def model(self) -> torch.nn.Module:
        return build_model(self.spec, self.cfg.weights).to(self.device)

    @cached_property
    def cpu_model(self) -> torch.nn.Module:
        return self.model if self.device.type == "cpu" else build_model(self.spec, self.cfg.weights)

    @cached_property
    def every_layer(self) -> list[LayerRef]:
        """All of the model's layers, analysable or not (listed once per run)."""
        return list_layers(self.cpu_model, self.spec, with_unanalysable=True)

    @cached_property
    def layers(self) -> list[LayerRef]:
        """The layers this run analyses, each resolved once to its LayerRef."""
        layers = resolve_layers(self.cpu_model, self.spec, self.cfg.layers or None, self.every_layer)
        known = {n for layer in layers for n in (layer.name, layer.alias) if n}
        from atlas.units import parse_units
        for name in parse_units(self.cfg.units):
            if name not in known:
                raise ValueError(f"'units': layer {name!r} is not among the run's layers "
                                 f"({', '.join(layer.short_title for layer in layers)})")
        return layers

    def layer(self, name: str, key: str = "layers") -> LayerRef:
        """The LayerRef of `name` (a node or an alias), from any of the model's layers;
        unknown or unanalysable names fail naming `key`."""
        try:
            return resolve_layers(self.cpu_model, self.spec, [name], self.every_layer)[0]
        except ValueError as exc:
            raise ValueError(f"{key!r}: {exc}") from exc

    def check_layer_name(self, name: str, key: str = "layers") -> str:
        """The node name of `name` (a node or an alias); unknown names fail naming `key`."""
        return self.layer(name, key).name

    @cached_property
    def penultimate(self) -> str | None:
        """The spec's penultimate layer, else the one the family rule finds (maps' default)."""
        return self.spec.penultimate or penultimate([l for l in self.every_layer if l.layout != "none"])

    def units_of(self, layer: LayerRef) -> list[int]:
        """The units of `layer` chosen by `units` (else the first `units_limit`)."""
        from atlas.units import units_for
        return units_for(layer.name, layer.alias, layer.units, self.cfg.units, self.cfg.units_limit)

    @cached_property
    def raw_source(self) -> Source:
        return make_source(self.cfg)

    @cached_property
    def source(self) -> Source:
        """The listed images (ids = positions), as the dataset stage recorded them; the ones
        the top-k pass found unusable are in `stages/topk/unusable.json`."""
        if self.store.manifest("dataset") is None:
            raise RuntimeError("the dataset stage has not run")
        return self.raw_source

    def model_params(self) -> dict:
        params = {"model": self.spec.name, "weights": self.weights_id, "input_size": self.spec.input_size,
                  "mean": list(self.spec.mean), "std": list(self.spec.std), "resize": self.spec.resize}
        if self.spec.interpolation != "bilinear":
            params["interpolation"] = self.spec.interpolation
        if self.spec.identity:  # a user model file's sha256: editing the file reruns its stages
            params["model_source"] = self.spec.identity
        return params

    def layer_names(self) -> list[str]:
        """Node names of the run's layers."""
        return [layer.name for layer in self.layers]


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
