"""Fourier prior: Lucid's decorrelated Fourier parameterization with random transforms
(Olah et al. 2017; implementation: atlas/priors/fourier.py)."""
from __future__ import annotations

from dataclasses import dataclass

from atlas.priors.registry import Prior, Problem, Result


@dataclass(frozen=True)
class FourierSettings:
    iters: int = 256
    lr: float = 0.05
    decay_power: float = 1.0
    init_std: float = 0.05     # Lucid uses 0.01; a near-flat image can sit where every ReLU is off
    transforms: bool = True


def visualize(problem: Problem) -> Result:
    from atlas.priors.fourier import fourier_visualize
    images, _ = fourier_visualize(problem.target, problem.objective, problem.seeds, problem.settings,
                                  progress=problem.progress)
    return Result(images)


PRIOR = Prior(name="fourier", title="Fourier prior (Olah et al.)", short="Fourier prior", column="Fourier", settings=FourierSettings,
              keys={"fourier_iters": "iters"}, visualize=visualize)
