"""The priors of feature visualization as plug-ins: one `Prior` entry per prior.

A prior is one file that defines a settings dataclass and a module-level `PRIOR`
(see `atlas/priors/plugins/`). The entry says everything the rest of the atlas needs to
know about it, so nothing else keeps a list of priors:

- `name` (the id in configs, artifact file names and URLs), `title` and `short` (what the
  site and figures print; they are stored in each featvis `meta.json`, so the renderer
  reads them from the run, never from this module);
- `settings` and `keys`: the settings dataclass, and the flat config keys the prior
  declares (`pixel_iters` -> `PixelSettings.iters`); the config accepts those keys like
  any other (TOML, `--set`), and the resolved settings go into the stage key;
- `visualize(problem) -> Result`: images for a batch of (unit, seed) elements;
- `stores`: the extra arrays it keeps per element besides the image and its activation
  (e.g. DGN-AM's last iterate when the stored image is the best restart);
- `needs_data`: it reads the run's data set (MACO's magnitude spectrum), so its featvis
  stage depends on the dataset stage; `prepare(ctx, settings)` loads such inputs once per
  layer and `identity(ctx, settings)` names them in the stage key (a file's checksum).

Built-in priors live in `atlas/priors/plugins/`; more are loaded from the files named in
the environment variable `ATLAS_PRIOR_PLUGINS` (separated by `os.pathsep`). This module
and the plug-in files import no torch at module level: the config and the CLI read the
registry without loading the numerical stack.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PLUGIN_ENV = "ATLAS_PRIOR_PLUGINS"


class SkipPrior(Exception):
    """Raised by `Prior.identity` when the prior cannot run for this model (the message
    says why); the featvis stage then leaves the prior out and prints the message."""


@dataclass
class Problem:
    """One batched optimization: element b maximizes `objective` (element b's unit) from
    `seeds[b]`. `objective` already carries the diversity term when the prior uses it;
    `plain` is the unit objective alone. `resource` is what `Prior.prepare` loaded."""
    target: Any                     # atlas.priors.target.NetTarget
    objective: Any                  # atlas.priors.objectives.Objective
    plain: Any
    seeds: list[int]
    settings: Any
    resource: Any = None
    progress: Callable[[int], None] | None = None


@dataclass
class Result:
    """Images (B, 3, S, S) in 0..1, and the arrays named in `Prior.stores` (B, ...)."""
    images: Any
    arrays: dict[str, Any] = field(default_factory=dict)
    info: dict = field(default_factory=dict)   # summary figures (not artifacts)


@dataclass(frozen=True)
class Prior:
    name: str
    title: str                      # long name: "Fourier prior (Olah et al.)"
    short: str                      # the site's mode name: "Fourier prior"
    settings: type                  # a frozen dataclass with an `iters` field
    keys: dict[str, str]            # flat config key -> settings field
    visualize: Callable[[Problem], Result]
    # extra per-element arrays, <name>_<store>.npy: names, or a function of the settings giving them
    stores: tuple[str, ...] | Callable[[Any], tuple[str, ...]] = ()
    needs_data: bool = False
    uses_diversity: bool = True     # the featvis_diversity term applies to it
    column: str = ""                # a figure's column header (+ " s0"): "Fourier"; default: short
    defaults: dict[str, Any] = field(default_factory=dict)   # config defaults departing from the dataclass
    prepare: Callable[[Any, Any], Any] | None = None
    identity: Callable[[Any, Any], dict] | None = None
    describe: Callable[[Any], dict] | None = None   # meta.json entries about the prepared inputs

    def __post_init__(self) -> None:
        fields = {f.name: f for f in dataclasses.fields(self.settings)}
        if "iters" not in fields:
            raise ValueError(f"prior {self.name!r}: its settings need an 'iters' field")
        for key, name in self.keys.items():
            if name not in fields:
                raise ValueError(f"prior {self.name!r}: config key {key!r} names no settings field {name!r}")
        for key in self.defaults:
            if key not in self.keys:
                raise ValueError(f"prior {self.name!r}: a default for undeclared key {key!r}")
        if "iters" not in self.keys.values():
            raise ValueError(f"prior {self.name!r}: declare a config key for 'iters' (e.g. {self.name}_iters)")

    @property
    def iters_key(self) -> str:
        return next(k for k, f in self.keys.items() if f == "iters")

    def config_fields(self) -> list[tuple[str, type, Any]]:
        """(flat key, type, default) of each declared key, defaults from the dataclass."""
        fields = {f.name: f for f in dataclasses.fields(self.settings)}
        out = []
        for key, name in self.keys.items():
            f = fields[name]
            typ = {"int": int, "float": float, "bool": bool, "str": str}.get(f.type, f.type) \
                if isinstance(f.type, str) else f.type
            out.append((key, typ, self.defaults.get(key, f.default)))
        return out

    def stores_for(self, settings: Any) -> tuple[str, ...]:
        return tuple(self.stores(settings)) if callable(self.stores) else tuple(self.stores)

    def settings_from(self, cfg: Any) -> Any:
        """The settings dataclass with the declared keys' values from the config."""
        return self.settings(**{name: getattr(cfg, key) for key, name in self.keys.items()})


_REGISTRY: dict[str, Prior] = {}
_LOADED = False


def register(prior: Prior, origin: str = "") -> Prior:
    """Add a prior; a second prior of the same name, or one reusing another's config
    key, is refused."""
    if prior.name in _REGISTRY:
        raise ValueError(f"prior {prior.name!r} is registered twice ({origin or 'plug-in'})")
    taken = {k: p.name for p in _REGISTRY.values() for k in p.keys}
    for key in prior.keys:
        if key in taken:
            raise ValueError(f"prior {prior.name!r}: config key {key!r} is already prior {taken[key]!r}'s")
    _REGISTRY[prior.name] = prior
    return prior


def load_file(path: str | Path) -> Prior:
    """Import a plug-in file and register its `PRIOR`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prior plug-in not found: {path} ({PLUGIN_ENV})")
    spec = importlib.util.spec_from_file_location(f"atlas_prior_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prior = getattr(module, "PRIOR", None)
    if not isinstance(prior, Prior):
        raise ValueError(f"{path}: a prior plug-in defines PRIOR = Prior(...)")
    return register(prior, str(path))


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from atlas.priors import plugins
    for info in sorted(pkgutil.iter_modules(plugins.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{plugins.__name__}.{info.name}")
        if isinstance(getattr(module, "PRIOR", None), Prior):
            register(module.PRIOR, module.__name__)
    for item in os.environ.get(PLUGIN_ENV, "").split(os.pathsep):
        if item.strip():
            load_file(item.strip())


BUILTIN_ORDER = ("dgn", "pixel", "fourier", "maco")


def priors() -> dict[str, Prior]:
    """All registered priors: the built-in ones in their usual order, then the others."""
    _load()
    order = [n for n in BUILTIN_ORDER if n in _REGISTRY] + sorted(n for n in _REGISTRY if n not in BUILTIN_ORDER)
    return {n: _REGISTRY[n] for n in order}


def get(name: str) -> Prior:
    all_ = priors()
    if name not in all_:
        raise KeyError(f"unknown prior {name!r}; choose from {', '.join(all_)}")
    return all_[name]


def labels(names: list[str]) -> dict[str, dict[str, str]]:
    """{name: {title, short, column}} for a featvis meta.json: all the renderer and the
    figures know of a prior."""
    return {n: {"title": get(n).title, "short": get(n).short, "column": get(n).column or get(n).short}
            for n in names}
