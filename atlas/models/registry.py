"""Every model atlas can open, by name.

Three ways to name one (see README, "Models"):
- a name: the shipped networks (worldnet, cifarnet) and every torchvision classifier
  (`torchvision.models.list_models(module=torchvision.models)`); `timm:NAME` for timm;
- `path/to/file.py:factory` or `package.module:factory`: your own `nn.Module` (this runs
  that code; see `atlas.models.user`).
Registered specs come first; unknown names fail with the closest names.
"""
from __future__ import annotations

import difflib
from functools import lru_cache

from atlas.models import zoo
from atlas.models.spec import ModelSpec

_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in zoo.SPECS}


class UnknownModel(KeyError):
    """The name names no model; the message lists the closest names."""


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec under its name (refuses duplicates, as timm's registry does)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, ModelSpec]:
    """The registered specs (the shipped networks, the hand-tuned torchvision ones, test models)."""
    return dict(_REGISTRY)


@lru_cache(maxsize=1)
def torchvision_names() -> tuple[str, ...]:
    import torchvision
    from torchvision.models import list_models
    return tuple(sorted(list_models(module=torchvision.models)))


def timm_names(pattern: str = "*") -> tuple[str, ...]:
    try:
        import timm
    except ImportError:
        return ()
    return tuple(f"timm:{n}" for n in timm.list_models(pattern))


def is_user_model(name: str) -> bool:
    """A file (`x.py:f`) or module (`pkg.mod:f`) reference rather than a name."""
    if name.startswith("timm:") or ":" not in name:
        return False
    where, _, fn = name.rpartition(":")
    return bool(where) and fn.isidentifier()


def get_spec(name: str) -> ModelSpec:
    """The spec of `name` (see the module docstring); UnknownModel lists close matches."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith("timm:"):
        from atlas.models.timm_models import timm_spec
        return timm_spec(name[len("timm:"):])
    if is_user_model(name):
        from atlas.models.user import user_spec
        return user_spec(name)
    if name in torchvision_names():
        from atlas.models.tv import torchvision_spec
        return torchvision_spec(name)
    known = sorted(set(_REGISTRY) | set(torchvision_names()))
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownModel(f"unknown model {name!r}; {hint}choose one of: {', '.join(sorted(_REGISTRY))} or any "
                       f"of the {len(torchvision_names())} torchvision classifiers (`atlas models` lists them), "
                       "timm:NAME, or your own module as path/file.py:factory")
