"""A toy prior in one file (tests/test_prior_plugins.py loads it through ATLAS_PRIOR_PLUGINS):
one flat colour per image, optimized by gradient ascent through the shared render loop."""
from dataclasses import dataclass

from atlas.priors.registry import Prior, Result


@dataclass(frozen=True)
class ToySettings:
    iters: int = 10
    lr: float = 0.1


def start_logits(seeds):
    """Each element's seeded start colour (as logits), (B, 3, 1, 1)."""
    import torch
    return torch.stack([torch.randn(3, 1, 1, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def visualize(problem):
    import torch
    from atlas.priors.render import render
    t = problem.target
    logit = start_logits(problem.seeds).to(t.device, t.dtype).requires_grad_(True)
    size = t.input_size
    image_fn = lambda: torch.sigmoid(logit).expand(-1, -1, size, size)  # noqa: E731
    images, _ = render([logit], image_fn, problem.objective, t, problem.settings.iters,
                       torch.optim.Adam([logit], lr=problem.settings.lr), progress=problem.progress)
    return Result(images, {"color": torch.sigmoid(logit).detach().flatten(1)})


PRIOR = Prior(name="toy", title="Toy flat-colour prior", short="toy colour", settings=ToySettings,
              keys={"toy_iters": "iters", "toy_lr": "lr"}, visualize=visualize, stores=("color",))
