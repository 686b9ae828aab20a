"""featvis_batch = 0 sizes the batched run: 128 on a CPU, from free memory on a GPU."""
import torch

from atlas.models import get_spec, load_model
from atlas.priors import batching
from atlas.priors.generator import DeePSiM, family_config
from atlas.priors.genfile import CodeStats, GeneratorBundle
from atlas.priors.objectives import unit_objective
from atlas.priors.target import NetTarget


def test_power_of_two_that_fits_the_share_of_free_memory():
    mib = 2 ** 20
    assert batching.batch_from_memory(1000 * mib, 1 * mib) == 512        # 600 fit -> 512
    assert batching.batch_from_memory(1000 * mib, 0.3 * mib) == 1024     # 2000 fit -> 1024
    assert batching.batch_from_memory(10 ** 12, 1) == batching.HIGHEST    # capped
    assert batching.batch_from_memory(10 * mib, 1 * mib) == batching.LOWEST  # 6 fit: still the floor
    assert batching.batch_from_memory(100 * mib, 1 * mib, share=0.9) == 64


def _target_and_bundle():
    spec = get_spec("worldnet")
    target = NetTarget(load_model(spec, "random"), spec)
    g = DeePSiM(family_config(128, 32, width=8, fc_width=32)).init_weights(torch.Generator().manual_seed(0))
    return target, GeneratorBundle(g.eval().requires_grad_(False), CodeStats(ub=torch.full((128,), 2.0)))


def test_configured_value_wins_and_cpu_auto_is_128():
    target, bundle = _target_and_bundle()
    obj = lambda n: unit_objective("classifier.fc8", torch.zeros(n, dtype=torch.long))  # noqa: E731
    assert batching.featvis_batch(7, target, bundle, obj) == 7
    assert batching.featvis_batch(0, target, bundle, obj) == batching.CPU_BATCH


def test_probe_step_runs_both_paths_and_reaches_the_code():
    """The GPU probe is one DGN-AM step (generator, crop, network, backward); run it here
    on the CPU so a broken probe fails in CI, not on the first GPU."""
    target, bundle = _target_and_bundle()
    obj = lambda n: unit_objective("features.conv3", torch.arange(n) % 4)  # noqa: E731
    for gen in (bundle, None):
        grad = batching.probe_step(target, gen, obj, 4)
        assert grad is not None and grad.shape[0] == 4 and grad.abs().sum() > 0
