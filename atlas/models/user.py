"""Your own model: `--model path/to/file.py:factory` or `--model package.module:factory`.

This imports the file or module and calls `factory()`, so it runs that code. The factory
returns an `nn.Module`, or a `UserModel` that also gives the input settings:

    from atlas.models.user import UserModel
    def make():
        return UserModel(MyNet(), input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3,
                         class_names=("cat", "dog"), aliases={"conv5": "features.4"},
                         default_layers=("conv5", "fc"))

The file's sha256 (for a module, its source file's) goes into every stage key, so editing
the model reruns what depends on it. Errors name the file, the function and what was wrong.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch.nn as nn

from atlas.models.checkpoint import load_weights
from atlas.models.spec import ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class UserModel:
    """A module and how to feed it. Defaults: 224 px, ImageNet mean/std, no class names, the
    layers chosen by atlas's family rule (stage outputs, penultimate, logits)."""
    module: nn.Module
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: tuple[str, ...] | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    default_layers: tuple[str, ...] = ()
    resize: int | None = None


class UserModelError(ValueError):
    """The file, module or factory cannot give a model; the message names which and why."""


def _load_function(ref: str):
    """(function, source file) for `file.py:fn` or `package.module:fn`."""
    where, _, fn_name = ref.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise UserModelError(f"model file not found: {path} (from --model {ref})")
        name = "atlas_user_model_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure of the user's code
            raise UserModelError(f"{path}: importing the file failed: {type(exc).__name__}: {exc}") from exc
        origin = path
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:  # noqa: BLE001
            raise UserModelError(f"module {where!r} (from --model {ref}) cannot be imported: "
                                 f"{type(exc).__name__}: {exc}") from exc
        origin = Path(module.__file__) if getattr(module, "__file__", None) else None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:10]
        raise UserModelError(f"{origin or where}: no function {fn_name!r} (callables there: {', '.join(found)})")
    return fn, origin


def _call(ref: str) -> tuple[UserModel, Path | None]:
    fn, origin = _load_function(ref)
    where = f"{origin or ref.rpartition(':')[0]}: {fn.__name__}()"
    try:
        made = fn()
    except Exception as exc:  # noqa: BLE001 - the user's factory failed
        raise UserModelError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(made, nn.Module):
        made = UserModel(made)
    if not isinstance(made, UserModel) or not isinstance(made.module, nn.Module):
        raise UserModelError(f"{where} returned {type(made).__name__}, not an nn.Module or an "
                             "atlas.models.user.UserModel")
    if not (isinstance(made.input_size, int) and made.input_size >= 8):
        raise UserModelError(f"{where}: input_size must be an integer >= 8, got {made.input_size!r}")
    for key in ("mean", "std"):
        v = getattr(made, key)
        if len(tuple(v)) != 3 or (key == "std" and min(v) <= 0):
            raise UserModelError(f"{where}: {key} must be three numbers (std > 0), got {v!r}")
    return made, origin


def user_spec(ref: str) -> ModelSpec:
    """The spec of a user factory; its source file's sha256 is the spec's identity."""
    made, origin = _call(ref)
    digest = hashlib.sha256(origin.read_bytes()).hexdigest() if origin and origin.is_file() else ""

    def build(weights: str | None) -> nn.Module:
        module = copy.deepcopy(made.module)
        if weights not in (None, "random"):
            load_weights(module, weights)
        return module

    return ModelSpec(
        name=ref, build=build, input_size=made.input_size, resize=made.resize,
        mean=tuple(float(v) for v in made.mean), std=tuple(float(v) for v in made.std),
        class_names=tuple(made.class_names) if made.class_names else None,
        aliases=dict(made.aliases), default_layers=tuple(made.default_layers),
        description=f"your model from {origin or ref}", source="file" if str(origin) in ref else "module",
        identity=f"sha256:{digest}" if digest else "")
