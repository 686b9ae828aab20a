"""MACO prior: phase-only optimization under the data set's magnitude spectrum (Fel et al.
2023; implementation: atlas/priors/maco.py). Reads the run's data set (the spectrum), so
its featvis stage depends on the dataset stage."""
from __future__ import annotations

from dataclasses import dataclass

from atlas.priors.registry import Prior, Problem, Result


@dataclass(frozen=True)
class MacoSettings:
    iters: int = 256
    lr: float = 1.0              # horama's NAdam step on the phase
    crop_min: float = 0.8        # crop side, fraction of the image's (horama: 0.20..0.25 of a
    crop_max: float = 1.0        # 1280 px canvas for a 224 px network, i.e. about 1.1..1.4x its input)
    crop_shift: float = 0.1      # std of the crop centre's offset, fraction of the side (horama: 0.15)
    noise: float = 0.05          # std of the added noise, 0..1 pixel units
    spectrum_images: int = 512   # data-set images averaged into the magnitude spectrum

    def __post_init__(self) -> None:
        if not 0 < self.crop_min <= self.crop_max <= 1.5:
            raise ValueError(f"need 0 < crop_min <= crop_max <= 1.5, got {self.crop_min}, {self.crop_max}")


def spectrum_ids(n_images: int, wanted: int) -> list[int]:
    """`wanted` image ids spread evenly over the data set (all when it has fewer)."""
    if n_images <= wanted:
        return list(range(n_images))
    return sorted({int(i * n_images / wanted) for i in range(wanted)})


def prepare(ctx, settings: MacoSettings):
    """The magnitude spectrum of the run's usable images at the network's input size."""
    import numpy as np
    from atlas.data.loader import display_transform
    from atlas.priors.maco import data_spectrum
    source, tf = ctx.source, display_transform(ctx.spec)
    ids = spectrum_ids(len(source), settings.spectrum_images)
    if not ids:
        raise ValueError("the MACO prior needs data-set images for its spectrum; the data set has none")
    from atlas.data.sources import DataError
    images = []
    for i in ids:  # a file the listing kept but that cannot be decoded is left out here too
        try:
            images.append(tf(source.load(i)).permute(1, 2, 0).numpy())
        except DataError:
            continue
    if not images:
        raise ValueError("the MACO prior needs data-set images for its spectrum; none of them could be decoded")
    return {"magnitude": data_spectrum(np.stack(images)), "images": len(images)}


def describe(resource) -> dict:
    return {"maco": {"spectrum_images": resource["images"], "spectrum": "mean |rfft2| of the run's images, "
                     "decorrelated colour"}}


def visualize(problem: Problem) -> Result:
    from atlas.priors.maco import maco_visualize
    images, _ = maco_visualize(problem.target, problem.objective, problem.seeds, problem.resource["magnitude"],
                               problem.settings, progress=problem.progress)
    return Result(images)


PRIOR = Prior(name="maco", title="MACO (magnitude-constrained phase, Fel et al.)", short="MACO prior", column="MACO",
              settings=MacoSettings, keys={"maco_iters": "iters", "maco_lr": "lr", "maco_noise": "noise"},
              visualize=visualize, needs_data=True, prepare=prepare, describe=describe)
