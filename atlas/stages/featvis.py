"""Stage `featvis/<layer>`: each unit's preferred input under each chosen prior.

For every unit of the layer (the first `units_limit`), `seeds` images per prior: DGN-AM
through the model's generator, pixel-space ascent with Yosinski et al.'s regularizers,
and Lucid's decorrelated Fourier parameterization. Units are worked in contiguous chunks
of about `featvis_batch` optimizations, one batched optimization per chunk and prior;
each finished chunk is kept (atomically) in the stage's partial folder, so an interrupted
run resumes where it stopped, and ranks could share the chunks (`ctx.shard`).

Conv units are optimized at the centre neuron of their channel (act_max.py), or the
channel mean (`dgn_conv_objective = "mean"`); with the centre neuron the stored images are
cropped to that neuron's receptive field, measured as the bounding box of the input
pixels its gradient reaches. `<prior>_act.npy` holds the objective for each stored
(uint8, uncropped) image: what the atlas shows is what was measured.
"""
from __future__ import annotations

import os
import time
import zlib
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atlas.priors.batching import featvis_batch
from atlas.priors.dgn import DGNSettings, dgn_am, initial_codes
from atlas.priors.fourier import FourierSettings, fourier_visualize
from atlas.priors.genfile import GeneratorBundle, load_generator
from atlas.priors.objectives import center_of, diversity, unit_objective
from atlas.priors.pixel import PixelSettings, pixel_visualize
from atlas.priors.target import NetTarget, to_uint8
from atlas.resources import weights_path
from atlas.stages.base import Stage
from atlas.stages.store import sha256_file, write_json

VERSION = 1


def generator_file(ctx) -> Path | None:
    """The configured generator file, else the model's shipped one, else None."""
    if ctx.cfg.generator:
        path = Path(ctx.cfg.generator)
        if not path.is_file():
            raise FileNotFoundError(f"generator file not found: {path} (config key 'generator')")
        return path
    if ctx.spec.generator and weights_path(ctx.spec.generator).is_file():
        return weights_path(ctx.spec.generator)
    return None


def prior_settings(cfg) -> dict:
    """The settings of each prior, from the config (these go into the stage key)."""
    return {"dgn": DGNSettings(iters=cfg.dgn_iters, lr_start=cfg.dgn_lr_start, lr_end=cfg.dgn_lr_end,
                               clip_image=cfg.dgn_clip_image),
            "pixel": PixelSettings(iters=cfg.pixel_iters),
            "fourier": FourierSettings(iters=cfg.fourier_iters)}


def make(ctx) -> list[Stage]:
    cfg = ctx.cfg
    priors = list(cfg.priors)
    gen_path = generator_file(ctx) if "dgn" in priors else None
    if "dgn" in priors and gen_path is None:
        print(f"note: model {ctx.spec.name!r} has no generator; skipping the dgn prior "
              "(set 'generator' to a generator file, see `atlas train-generator` / `atlas convert-generator`)")
        priors.remove("dgn")
    settings = prior_settings(cfg)
    common = {**ctx.model_params(), "priors": priors, "seeds": cfg.seeds, "seed": cfg.seed,
              "conv_objective": cfg.dgn_conv_objective, "diversity": cfg.featvis_diversity,
              "settings": {p: vars(settings[p]) for p in priors},
              "generator": "sha256:" + sha256_file(gen_path) if gen_path else None}
    stages = []
    for layer in ctx.layers:
        units = min(layer.units, cfg.units_limit or layer.units)
        params = {**common, "layer": layer.name, "units": units}
        fn = partial(run, layer=layer, units=units, priors=priors, settings=settings, gen_path=gen_path)
        stages.append(Stage(f"featvis/{layer.name}", VERSION, params, fn))
    return stages


def element_seed(base: int, layer: str, unit: int, seed: int) -> int:
    """A seed for (unit, seed index) that does not depend on the chunking."""
    return int(np.random.SeedSequence([base, zlib.crc32(layer.encode()), unit, seed]).generate_state(1)[0])


def center_receptive_field(target: NetTarget, node: str, seed: int = 0, probes: int = 16) -> list[int]:
    """[y0, x0, y1, x1) of the input pixels that the centre neuron of `node` depends on:
    the bounding box of its nonzero input gradient, over random probe images and all
    channels (so max-pool routing and dead ReLUs of one probe do not shrink it)."""
    s = target.input_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(probes, 3, s, s, generator=g).to(target.device, target.dtype).requires_grad_(True)
    act = target.net_for([node])(x)[node]
    cy, cx = center_of(act.shape)
    grad, = torch.autograd.grad(act[:, :, cy, cx].sum(), x)
    mask = grad.abs().sum((0, 1)) > 0
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        return [0, 0, s, s]
    return [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]


def _optimize(prior: str, target: NetTarget, bundle: GeneratorBundle | None, objective, seeds: list[int],
              settings, progress) -> tuple[torch.Tensor, dict]:
    """Images (B, 3, S, S) in 0..1 for one chunk under one prior."""
    if prior == "dgn":
        z0 = initial_codes(seeds, bundle.code_dim, target.device, target.dtype)
        res = dgn_am(bundle, target, objective, z0, settings, autocast=target.device.type == "cuda",
                     progress=progress)
        return res.images, {"iterations_min": int(res.iterations.min())}
    if prior == "pixel":
        images, _ = pixel_visualize(target, objective, seeds, settings, progress=progress)
        return images, {}
    if prior == "fourier":
        images, _ = fourier_visualize(target, objective, seeds, settings, progress=progress)
        return images, {}
    raise ValueError(f"unknown prior {prior!r}")


def _save_chunk(path: Path, images: np.ndarray, acts: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, images=images, acts=acts)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@contextmanager
def cpu_threads(n: int, device: torch.device):
    """Run with n torch CPU threads (n = 0 or a GPU device: unchanged), then restore."""
    if n <= 0 or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(ctx, out: Path, key: str, layer, units: int, priors: list[str], settings: dict,
        gen_path: Path | None) -> dict:
    with cpu_threads(ctx.cfg.featvis_threads, ctx.device):
        return _run(ctx, out, key, layer, units, priors, settings, gen_path)


def _run(ctx, out: Path, key: str, layer, units: int, priors: list[str], settings: dict,
         gen_path: Path | None) -> dict:
    cfg = ctx.cfg
    S = cfg.seeds
    target = NetTarget(ctx.model, ctx.spec, ctx.device, channels_last=True)
    bundle = load_generator(gen_path, ctx.device) if "dgn" in priors else None
    if bundle is not None:
        bundle.net.to(memory_format=torch.channels_last)
    where = cfg.dgn_conv_objective if layer.kind == "conv" else "unit"
    crop = center_receptive_field(target, layer.name, cfg.seed) if where == "center" else None
    batch = featvis_batch(cfg.featvis_batch, target, bundle,
                          lambda n: unit_objective(layer.name, torch.zeros(n, dtype=torch.long),
                                                   "center" if where == "unit" else where))
    per_chunk = max(1, batch // S)
    chunks = [(u0, min(units, u0 + per_chunk)) for u0 in range(0, units, per_chunk)]
    mine = set(ctx.shard(len(chunks)))
    order = [c for i, c in enumerate(chunks) if i in mine] + [c for i, c in enumerate(chunks) if i not in mine]
    part = ctx.store.partial_dir(f"featvis/{layer.name}", key)
    total = sum(settings[p].iters for p in priors) * units * S
    done_units = {p: 0 for p in priors}
    seconds = {p: 0.0 for p in priors}
    bar = tqdm(total=total, desc=f"featvis {layer.name}", unit="unit-it", unit_scale=True)
    for u0, u1 in order:
        unit_ids = torch.arange(u0, u1).repeat_interleave(S)
        seeds = [element_seed(cfg.seed, layer.name, u, s) for u in range(u0, u1) for s in range(S)]
        objective = unit_objective(layer.name, unit_ids, "center" if where == "unit" else where)
        diverse = objective + cfg.featvis_diversity * diversity(layer.name, unit_ids) \
            if cfg.featvis_diversity > 0 and S > 1 else objective
        for prior in priors:
            path = part / f"{prior}_{u0:05d}_{u1:05d}.npz"
            n_el = len(seeds)
            if path.is_file():
                bar.update(settings[prior].iters * n_el)
                done_units[prior] += u1 - u0
                continue
            t0 = time.time()
            images, _ = _optimize(prior, target, bundle, objective if prior == "dgn" else diverse, seeds,
                                  settings[prior],
                                  lambda k, n=n_el: bar.update(k * n))
            stored = to_uint8(images)
            acts = target.activations_of_uint8(stored, objective).cpu().numpy()
            seconds[prior] += time.time() - t0
            _save_chunk(path, stored.numpy().reshape(u1 - u0, S, *stored.shape[1:]),
                        acts.reshape(u1 - u0, S).astype(np.float32))
            done_units[prior] += u1 - u0
            bar.set_postfix_str(f"{prior} units {done_units[prior]}/{units}")
    bar.close()
    summary: dict = {"units": units, "seeds": S}
    for prior in priors:
        imgs, acts = [], []
        for u0, u1 in chunks:
            with np.load(part / f"{prior}_{u0:05d}_{u1:05d}.npz") as z:
                imgs.append(z["images"])
                acts.append(z["acts"])
        images = np.concatenate(imgs)
        if crop is not None:
            y0, x0, y1, x1 = crop
            images = images[:, :, y0:y1, x0:x1]
        np.save(out / f"{prior}.npy", np.ascontiguousarray(images))
        act = np.concatenate(acts).astype(np.float32)
        np.save(out / f"{prior}_act.npy", act)
        summary[f"{prior}_act_mean"] = round(float(act.mean()), 4)
        if seconds[prior] > 0:
            summary[f"{prior}_seconds"] = round(seconds[prior], 1)
    meta = {"layer": layer.name, "kind": layer.kind, "priors": priors, "seeds": S, "units": units,
            "iterations": {p: settings[p].iters for p in priors}, "crop": crop,
            "objective": where, "center": list(center_of(layer.shape)) if layer.kind == "conv" else None,
            "input_size": ctx.spec.input_size, "seed": cfg.seed, "diversity": cfg.featvis_diversity,
            "settings": {p: vars(settings[p]) for p in priors},
            "generator": None if bundle is None else {
                "file": gen_path.name, "sha256": sha256_file(gen_path), "code_dim": bundle.code_dim,
                "output_size": bundle.cfg.out_size, **{k: v for k, v in bundle.encoder.items()
                                                       if isinstance(v, (str, int, float))}}}
    write_json(out / "meta.json", meta)  # timings go to summary.json: artifacts stay deterministic
    return summary
