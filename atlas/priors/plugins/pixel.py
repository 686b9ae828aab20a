"""Pixel prior: gradient ascent on pixels with Yosinski et al.'s (2015) regularizers
(implementation: atlas/priors/pixel.py)."""
from __future__ import annotations

from dataclasses import dataclass

from atlas.priors.registry import Prior, Problem, Result


@dataclass(frozen=True)
class PixelSettings:
    iters: int = 200
    lr: float = 0.02          # mean |step| in 0..1 pixel units
    decay: float = 1e-2       # theta_decay
    blur_sigma: float = 0.5   # theta_b_width, pixels
    blur_every: int = 4       # theta_b_every
    norm_pct: float = 20.0    # theta_n_pct
    contrib_pct: float = 0.0  # theta_c_pct
    init_std: float = 0.02    # seeded noise around the mean color (Yosinski start from zero)


def visualize(problem: Problem) -> Result:
    from atlas.priors.pixel import pixel_visualize
    images, _ = pixel_visualize(problem.target, problem.objective, problem.seeds, problem.settings,
                                progress=problem.progress)
    return Result(images)


PRIOR = Prior(name="pixel", title="pixel prior (Yosinski et al.)", short="pixel prior", column="pixel", settings=PixelSettings,
              keys={"pixel_iters": "iters"}, visualize=visualize)
