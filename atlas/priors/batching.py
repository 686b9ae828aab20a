"""How many optimizations share one batched feature-visualization run.

`featvis_batch = 0` (auto): 128 on a CPU (fastest on the 2-core machine, featvis_speed.py);
on a GPU, as many as fit in 60% of the free memory, from the peak memory of a probe step
at a small batch. A power of two, so the same GPU gives the same chunks run after run (the
chunks' images do not depend on it: every element has its own seed).
"""
from __future__ import annotations

import torch

CPU_BATCH = 128
PROBE = 16
LOWEST, HIGHEST = 16, 4096


def batch_from_memory(free_bytes: int, per_element_bytes: float, share: float = 0.6,
                      lowest: int = LOWEST, highest: int = HIGHEST) -> int:
    """The largest power of two b with b * per_element_bytes <= share * free_bytes,
    clipped to [lowest, highest]."""
    if per_element_bytes <= 0:
        return highest
    fit = int(share * free_bytes / per_element_bytes)
    b = lowest
    while b * 2 <= min(fit, highest):
        b *= 2
    return b


def probe_step(target, bundle, objective_for, n: int) -> torch.Tensor:
    """One forward and backward step of the heaviest prior at batch n: through the
    generator when there is one (DGN-AM), else the network on images. Returns the
    gradient of what is optimized (the codes, or the images)."""
    dev = target.device
    if bundle is not None:
        leaf = torch.rand(n, bundle.code_dim, device=dev, dtype=target.dtype).requires_grad_(True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            images = bundle.net(leaf)
        x = images.float()
    else:
        s = target.input_size
        leaf = torch.rand(n, 3, s, s, device=dev, dtype=target.dtype).requires_grad_(True)
        x = leaf
    s = target.input_size
    top, left = (x.shape[-2] - s) // 2, (x.shape[-1] - s) // 2
    x = x[..., top:top + s, left:left + s]
    objective = objective_for(n)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        value = objective(target(x, objective.nodes))
    value.float().sum().backward()
    return leaf.grad


def featvis_batch(configured: int, target, bundle, objective_for) -> int:
    """`configured` when > 0; else CPU_BATCH on a CPU, or sized from free GPU memory."""
    if configured > 0:
        return configured
    dev = target.device
    if dev.type != "cuda":
        return CPU_BATCH
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    probe_step(target, bundle, objective_for, PROBE)
    torch.cuda.synchronize(dev)
    per_element = (torch.cuda.max_memory_allocated(dev) - base) / PROBE
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(dev)
    return batch_from_memory(free, per_element)
