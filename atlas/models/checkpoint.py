"""Reading and writing classifier checkpoints, and making any module safe to probe."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

FORMAT = "atlas-classifier/1"


def save_classifier(path: str | Path, model: nn.Module, arch: str, config: dict,
                    class_names: list[str], meta: dict) -> None:
    """Save a self-describing checkpoint (architecture, config, class names, provenance)."""
    payload = {"format": FORMAT, "arch": arch, "config": config, "class_names": list(class_names),
               "meta": meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_payload(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"cannot read weight file {path}: {exc}") from exc
    return payload


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict, the state dict inside an atlas checkpoint, or a safetensors file.
    Nothing pickled is executed: torch.load runs with weights_only=True."""
    if str(path).endswith(".safetensors"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"weight file not found: {path}")
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - a corrupt file gets the same clear message
            raise ValueError(f"cannot read weight file {path}: {exc}") from exc
    payload = load_payload(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return payload["state_dict"]
    if isinstance(payload, dict) and "state_dict" in payload and isinstance(payload["state_dict"], dict):
        return payload["state_dict"]
    if isinstance(payload, dict):
        return payload
    raise ValueError(f"{path} holds no state dict")


def prepare_for_probing(model: nn.Module) -> nn.Module:
    """Eval mode, frozen parameters, and no in-place ops (an in-place ReLU would overwrite
    the very activations a feature extractor returns)."""
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_weights(model: nn.Module, path: str | Path, strip_prefixes: tuple[str, ...] = ("module.",)) -> nn.Module:
    """Load a weight file into `model`; a file that does not fit fails naming the missing,
    unexpected and wrongly shaped keys (a DataParallel `module.` prefix is removed)."""
    state = load_state_dict_file(path)
    for prefix in strip_prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes (file vs model): {_few(shapes, 3)}")
    if problems:
        raise ValueError(f"weight file {path} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model
