"""The run configuration: one dataclass, read from TOML, overridden by CLI flags, checked
before any compute, and saved resolved beside the results."""
from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A config key or value is wrong; the message names it and the valid choices."""


DEFAULT_PRIORS = ("dgn", "pixel", "fourier")  # all priors: atlas.priors.registry.priors()
# the demo's feature-visualization budget (all 442 units on a 2-core CPU); DGN keeps act_max.py's 200
DEMO_FEATVIS = {"pixel_iters": 100, "fourier_iters": 100}
QUICK_ITERS = 40  # every prior's iterations in a --quick run
DEVICES = ("auto", "cpu", "cuda")
FEATVIS_DTYPES = ("auto", "float32", "bfloat16")  # featvis_dtype: precision of the image priors' steps
DATA_SPLITS = ("train", "test", "val", "extra", "unlabeled", "train+unlabeled")  # torchvision's split names


@dataclass
class Config:
    # what to analyze
    model: str = "worldnet"
    weights: str | None = None          # None: the model's default weights; "random"; or a path
    data: str = "world"                 # "world", an image folder, or "torchvision:CIFAR10"
    data_root: str | None = None        # where torchvision data sets live
    data_split: str = "test"
    data_download: bool = False
    data_limit: int | None = None       # use at most this many images (spread evenly)
    world_seed: int = 2
    world_count: int = 3000
    layers: list[str] = field(default_factory=list)  # empty: the model's default layers
    input_size: int | None = None       # feed the model this square size instead of its own (tests, small data)
    out: str = "atlas-out"
    # the data-set pass
    topk: int = 9
    batch_size: int = 128
    workers: int = 2
    device: str = "auto"
    # feature visualization
    priors: list[str] = field(default_factory=lambda: list(DEFAULT_PRIORS))
    seeds: int = 2
    # each prior's own keys (dgn_iters, pixel_iters, fourier_iters, ...) are declared by the
    # prior's plug-in (atlas/priors/plugins/) and added to this class below
    dgn_conv_objective: str = "center"  # "center" neuron or channel "mean"
    generator: str | None = None        # generator weight file; None: the model's shipped one
    featvis_batch: int = 0             # optimizations per batched run; 0: auto (128 on CPU, fastest
                                       # there; on a GPU as many as fit in 60% of free memory)
    # CPU threads for feature visualization (0: torch's default). Its many small batched ops
    # lose most of their time in thread barriers when the cores are shared: 1 thread ran the
    # quick demo's featvis 7x faster than 2 on a busy 2-core machine
    featvis_threads: int = 1
    # precision of the image priors' optimization steps (pixel, Fourier, MACO): "auto" is
    # bfloat16 autocast on a CPU with native bfloat16 (1.5-1.9x faster steps on cifarnet, same
    # activations: notes/priors.md), float32 elsewhere; stored activations are float32
    featvis_dtype: str = "auto"
    featvis_diversity: float = 0.0     # weight of Lucid's diversity term across a unit's seeds (pixel, fourier)
    units_limit: int | None = None      # visualize only the first N units of each layer
    units: list[str] = field(default_factory=list)  # which units, per layer: ["fc8:0-99", "conv5:all", "fc6:3,7"]
    # evidence and maps
    maps: bool = True
    map_layer: str | None = None        # default: the model's penultimate layer (fc7)
    map_images: int = 10_000            # images on the image map: a seeded, class-balanced sample (notes/data.md)
    neighbors: int = 10
    tsne_perplexity: float = 30.0
    seed: int = 0
    # evidence and maps, details (atlas/evidence, atlas/maps)
    patch_size: int | None = None       # patch side in px; None: the layer's receptive field, clipped to 64..224
    display_size: int | None = None     # top images and heatmaps in px; None: the model's input size, at most 256
    image_format: str = "jpeg"          # evidence photographs: jpeg (simplejpeg) or webp; see notes/resolution.md
    image_quality: int = 80             # lossy quality of evidence photographs, 1..100
    hist_bins: int = 30                 # bins of each unit's activation histogram
    dissect_quantile: float = 0.005     # NetDissect: a unit's top quantile of activation values
    dissect_iou: float = 0.04           # NetDissect: least IoU for a concept label
    fc_heatmaps: str = "auto"           # fc units' heatmaps: auto, saliency, gradcam or none
    umap_neighbors: int = 15
    exact_neighbors_max: int = 1_000_000  # past this many images the neighbour index is approximate (HNSW)
    # site
    title: str | None = None

    def resolved(self) -> dict:
        return dataclasses.asdict(self)


def _with_prior_keys(core: type) -> type:
    """`core` plus every registered prior's declared keys, as one dataclass named Config."""
    from atlas.priors.registry import priors
    extra = [(key, typ, field(default=default)) for p in priors().values() for key, typ, default in p.config_fields()]
    clash = [k for k, _, _ in extra if k in core.__dataclass_fields__]
    if clash:
        raise ConfigError(f"prior config keys {clash} clash with the run's own keys")
    cls = dataclasses.make_dataclass("Config", extra, bases=(core,), namespace={"__module__": __name__})
    cls.__doc__ = core.__doc__
    return cls


Config = _with_prior_keys(Config)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def from_dict(values: dict, base: Config | None = None, origin: str = "config") -> Config:
    """Apply `values` over `base`; unknown keys and wrong types fail naming the key."""
    hints = _hints()
    cfg = dataclasses.replace(base) if base else Config()
    for key, value in values.items():
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            what = "table" if isinstance(value, dict) else "key"
            raise ConfigError(f"{origin}: unknown {what} {key!r}{hint}; valid keys: {', '.join(hints)}")
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"{origin}: key {key!r} must be {_type_name(hints[key])}, "
                              f"got {value!r} ({_type_name(type(value))})")
        if hints[key] is float and isinstance(value, int):
            value = float(value)
        setattr(cfg, key, value)
    validate(cfg, origin)
    return cfg


def _type_name(hint: Any) -> str:
    """'int', 'list of str', 'str or none', ... for messages."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is list:
        inner = typing.get_args(hint)[0]
        plural = {str: "strings", int: "integers", float: "numbers"}.get(inner, _type_name(inner))
        return f"a list of {plural}"
    if hint is type(None):
        return "none (leave the key out)"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def validate(cfg: Config, origin: str = "config") -> None:
    from atlas.priors.registry import priors
    known = priors()
    for p in cfg.priors:
        if p not in known:
            raise ConfigError(f"{origin}: unknown prior {p!r} in 'priors'; choose from {', '.join(known)}")
    _validate_prior_keys(cfg, known.values(), origin)
    if cfg.device not in DEVICES:
        raise ConfigError(f"{origin}: 'device' must be one of {', '.join(DEVICES)}, got {cfg.device!r}")
    if cfg.dgn_conv_objective not in ("center", "mean"):
        raise ConfigError(f"{origin}: 'dgn_conv_objective' must be 'center' or 'mean', got {cfg.dgn_conv_objective!r}")
    for key in ("topk", "batch_size", "seeds", "neighbors", "world_count", "data_limit", "units_limit"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise ConfigError(f"{origin}: {key!r} must be at least 1, got {getattr(cfg, key)!r}")
    if cfg.featvis_batch < 0:
        raise ConfigError(f"{origin}: 'featvis_batch' must be >= 0 (0: sized automatically), got {cfg.featvis_batch!r}")
    if cfg.featvis_threads < 0:
        raise ConfigError(f"{origin}: 'featvis_threads' must be >= 0, got {cfg.featvis_threads!r}")
    if cfg.featvis_dtype not in FEATVIS_DTYPES:
        raise ConfigError(f"{origin}: 'featvis_dtype' must be one of {', '.join(FEATVIS_DTYPES)}, "
                          f"got {cfg.featvis_dtype!r}")
    if cfg.workers < 0:
        raise ConfigError(f"{origin}: 'workers' must be >= 0, got {cfg.workers!r}")
    for key in ("tsne_perplexity",):
        if not math.isfinite(getattr(cfg, key)):
            raise ConfigError(f"{origin}: {key!r} must be a finite number, got {getattr(cfg, key)!r}")
    if not cfg.out.strip():
        raise ConfigError(f"{origin}: 'out' must name a folder, got {cfg.out!r}")
    if not cfg.data.strip():
        raise ConfigError(f"{origin}: 'data' must be 'world', an image folder or torchvision:NAME, got {cfg.data!r}")
    if cfg.data_split not in DATA_SPLITS:
        raise ConfigError(f"{origin}: 'data_split' must be one of {', '.join(DATA_SPLITS)}, got {cfg.data_split!r}")
    for p in cfg.layers:
        if not p.strip():
            raise ConfigError(f"{origin}: 'layers' has an empty name")
    if cfg.input_size is not None and not 8 <= cfg.input_size <= 1024:
        raise ConfigError(f"{origin}: 'input_size' must be 8..1024 or unset, got {cfg.input_size!r}")
    from atlas.units import UnitsError, parse_units
    try:
        parse_units(cfg.units)
    except UnitsError as exc:
        raise ConfigError(f"{origin}: 'units': {exc}") from exc
    _validate_evidence(cfg, origin)


def _validate_prior_keys(cfg: Config, known, origin: str) -> None:
    """A prior's integer keys are counts (at least 1), its numbers finite; then its
    settings dataclass may refuse a combination (ValueError in __post_init__)."""
    for prior in known:
        for key, typ, _ in prior.config_fields():
            v = getattr(cfg, key)
            if typ is int and v < 1:
                raise ConfigError(f"{origin}: {key!r} must be at least 1, got {v!r}")
            if typ is float and not math.isfinite(v):
                raise ConfigError(f"{origin}: {key!r} must be a finite number, got {v!r}")
        try:
            prior.settings_from(cfg)
        except ValueError as exc:
            raise ConfigError(f"{origin}: prior {prior.name!r}: {exc}") from exc


def _validate_evidence(cfg: Config, origin: str) -> None:
    for key in ("hist_bins", "umap_neighbors", "exact_neighbors_max", "map_images"):
        if getattr(cfg, key) < (2 if key == "umap_neighbors" else 1):
            raise ConfigError(f"{origin}: {key!r} must be at least {2 if key == 'umap_neighbors' else 1}, "
                              f"got {getattr(cfg, key)!r}")
    if cfg.patch_size is not None and not 4 <= cfg.patch_size <= 512:
        raise ConfigError(f"{origin}: 'patch_size' must be 4..512 or unset, got {cfg.patch_size!r}")
    if not 0 < cfg.dissect_quantile < 1:
        raise ConfigError(f"{origin}: 'dissect_quantile' must be in (0, 1), got {cfg.dissect_quantile!r}")
    if not 0 <= cfg.dissect_iou < 1:
        raise ConfigError(f"{origin}: 'dissect_iou' must be in [0, 1), got {cfg.dissect_iou!r}")
    if cfg.display_size is not None and not 16 <= cfg.display_size <= 1024:
        raise ConfigError(f"{origin}: 'display_size' must be 16..1024 or unset, got {cfg.display_size!r}")
    if cfg.image_format not in ("jpeg", "webp"):
        raise ConfigError(f"{origin}: 'image_format' must be jpeg or webp, got {cfg.image_format!r}")
    if not 1 <= cfg.image_quality <= 100:
        raise ConfigError(f"{origin}: 'image_quality' must be 1..100, got {cfg.image_quality!r}")
    if cfg.fc_heatmaps not in ("auto", "saliency", "gradcam", "none"):
        raise ConfigError(f"{origin}: 'fc_heatmaps' must be auto, saliency, gradcam or none, got {cfg.fc_heatmaps!r}")
    if cfg.tsne_perplexity <= 0:
        raise ConfigError(f"{origin}: 'tsne_perplexity' must be positive, got {cfg.tsne_perplexity!r}")


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    # relative paths in a config file are relative to the file
    for key in ("data", "data_root", "weights", "generator", "out"):
        v = data.get(key)
        if isinstance(v, str) and v not in ("world", "random") and not v.startswith("torchvision:") \
                and not Path(v).is_absolute() and (path.parent / v).exists():
            data[key] = str((path.parent / v).resolve())
    return data


def quick(cfg: Config) -> Config:
    """The small version of a run, for checks: fewer images, iterations (40 per prior) and units."""
    from atlas.priors.registry import priors
    iters = {p.iters_key: min(getattr(cfg, p.iters_key), QUICK_ITERS) for p in priors().values()}
    return dataclasses.replace(
        cfg, world_count=min(cfg.world_count, 400), data_limit=min(cfg.data_limit or 400, 400),
        **iters, seeds=min(cfg.seeds, 2),
        units_limit=min(cfg.units_limit or 8, 8), topk=min(cfg.topk, 6))
