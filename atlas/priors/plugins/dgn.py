"""DGN-AM: activation maximization through the model's deep generator network (Nguyen et
al. 2016; implementation: atlas/priors/dgn.py). Needs a generator file: the configured
`generator`, else the model's shipped one; without one the prior is left out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atlas.priors.registry import Prior, Problem, Result, SkipPrior


@dataclass(frozen=True)
class DGNSettings:
    iters: int = 200
    lr_start: float = 8.0
    lr_end: float = 1e-10
    decay: float = 0.99   # act_max.py's L2 (applied when 0 < decay < 1)
    clip: bool = True     # clip the code to [0, ub]
    clip_image: bool = False  # feed the network G(z) clamped to the displayable range (not in act_max.py)
    # beyond act_max.py (each off by default in the dataclass, which is act_max.py's recipe):
    restarts: int = 1         # independent codes per image, each `iters` long; the stored image is the best
    keep: str = "last"        # "last" iterate (act_max.py) or the "best" iterate of a run
    init: str = "normal"      # start code: N(0, 1) (act_max.py) or "data": mean + std * N(0, 1) of real codes
    lr_units: str = "code"    # lr_start/lr_end in the code's own units (act_max.py), "bounds": scaled to its
    #                           bounds, or "auto": "code" from 100 iterations on, "bounds" below

    def __post_init__(self) -> None:
        if self.keep not in ("last", "best"):
            raise ValueError(f"'keep' must be 'last' or 'best', got {self.keep!r}")
        if self.init not in ("normal", "data"):
            raise ValueError(f"'init' must be 'normal' or 'data', got {self.init!r}")
        if self.lr_units not in ("code", "bounds", "auto"):
            raise ValueError(f"'lr_units' must be 'code', 'bounds' or 'auto', got {self.lr_units!r}")
        if self.restarts < 1:
            raise ValueError(f"'restarts' must be at least 1, got {self.restarts!r}")


def generator_file(ctx) -> Path | None:
    """The configured generator file, else the model's shipped one, else None."""
    from atlas.resources import weights_path
    if ctx.cfg.generator:
        path = Path(ctx.cfg.generator)
        if not path.is_file():
            raise FileNotFoundError(f"generator file not found: {path} (config key 'generator')")
        return path
    if ctx.spec.generator and weights_path(ctx.spec.generator).is_file():
        return weights_path(ctx.spec.generator)
    return None


def identity(ctx, settings: DGNSettings) -> dict:
    from atlas.artifacts.store import sha256_file
    path = generator_file(ctx)
    if path is None:
        raise SkipPrior(f"model {ctx.spec.name!r} has no generator; skipping the dgn prior (set 'generator' "
                        "to a generator file, see `atlas train-generator` / `atlas convert-generator`)")
    return {"generator": "sha256:" + sha256_file(path)}


def prepare(ctx, settings: DGNSettings):
    import torch
    from atlas.priors.genfile import load_generator
    path = generator_file(ctx)
    bundle = load_generator(path, ctx.device)
    bundle.net.to(memory_format=torch.channels_last)
    bundle.path = path
    return bundle


def describe(bundle) -> dict:
    """The generator block of the featvis meta.json."""
    from atlas.artifacts.store import sha256_file
    return {"generator": {"file": bundle.path.name, "sha256": sha256_file(bundle.path), "code_dim": bundle.code_dim,
                          "output_size": bundle.cfg.out_size,
                          **{k: v for k, v in bundle.encoder.items() if isinstance(v, (str, int, float))}}}


def restart_seed(seed: int, r: int) -> int:
    """Restart r's code seed for an element (restart 0 is the element's own seed)."""
    return int(seed) if r == 0 else (int(seed) * 1_000_003 + r * 7919) % (2 ** 63)


def stores(settings: DGNSettings) -> tuple[str, ...]:
    """What DGN-AM keeps beside the image: with restarts or the best iterate, the image is
    no longer act_max.py's last iterate, so that one is kept too (`last`, the last iterate
    of the first restart), with each restart's objective (`restart_acts`)."""
    if settings.restarts == 1 and settings.keep == "last":
        return ()
    return ("last", "restart_acts")


def data_codes(noise, stats):
    """Start codes drawn around the real images' codes: mean + std * noise, within [0, ub]."""
    import torch
    if stats.mean is None or stats.std is None:
        raise ValueError("dgn_init = 'data' needs the code mean and std in the generator file "
                         "(files made by `atlas train-generator` or `convert-generator --stats-data` have them)")
    mean, std = stats.mean.to(noise), stats.std.to(noise)
    return torch.minimum(torch.clamp(mean + std * noise, min=0), stats.ub.to(noise))


def visualize(problem: Problem) -> Result:
    import torch
    from atlas.priors.dgn import dgn_am, initial_codes
    t, bundle, s = problem.target, problem.resource, problem.settings
    best_img = best_act = last = None
    acts = []
    for r in range(s.restarts):
        z0 = initial_codes([restart_seed(x, r) for x in problem.seeds], bundle.code_dim, t.device, t.dtype)
        if s.init == "data":
            z0 = data_codes(z0, bundle.stats)
        res = dgn_am(bundle, t, problem.objective, z0, s, autocast=t.device.type == "cuda",
                     progress=(lambda k: problem.progress(k / s.restarts)) if problem.progress else None)
        img, act = (res.best_images, res.best_acts) if s.keep == "best" else (res.images, res.acts)
        last = res.images if last is None else last
        acts.append(act)
        if best_img is None:
            best_img, best_act = img, act
        else:
            better = act > best_act
            best_img = torch.where(better.view(-1, 1, 1, 1), img, best_img)
            best_act = torch.where(better, act, best_act)
    arrays = {"last": last, "restart_acts": torch.stack(acts, 1).float()} if stores(s) else {}
    return Result(best_img, arrays, info={"iterations_min": int(res.iterations.min())})


PRIOR = Prior(name="dgn", title="DGN-AM (generator prior)", short="DGN-AM", column="DGN", settings=DGNSettings,
              keys={"dgn_iters": "iters", "dgn_lr_start": "lr_start", "dgn_lr_end": "lr_end",
                    "dgn_lr_units": "lr_units", "dgn_decay": "decay", "dgn_clip": "clip",
                    "dgn_clip_image": "clip_image", "dgn_restarts": "restarts", "dgn_keep": "keep",
                    "dgn_init": "init"},
              # the atlas's defaults that depart from act_max.py (README: "DGN-AM's defaults")
              defaults={"dgn_clip_image": True, "dgn_keep": "best", "dgn_lr_units": "auto"},
              visualize=visualize, stores=stores, uses_diversity=False, prepare=prepare, identity=identity, describe=describe)
