"""How fast DGN-AM runs: batched over one unit at a time, and against the device's matmul.

    python benchmarks/featvis_speed.py                                   # demo network, CPU
    python benchmarks/featvis_speed.py --model alexnet --generator full  # torchvision alexnet (random
                                                                         # weights), full fc6 generator

`batched_vs_loop`: optimizations per second when `--batch` units share one batched run,
over the same optimizations run one unit at a time (act_max.py's way). `flop_utilization`:
FLOP/s achieved by the batched run (FLOPs counted by torch's FlopCounterMode over one
iteration: generator forward and backward, network forward and backward) over the FLOP/s
of a dense square matmul on the same device, in the same dtype, measured in the same run.
On CUDA the forward passes run under bf16 autocast.

On CUDA the batched run is timed with cuDNN's autotuner (torch.backends.cudnn.benchmark)
off and on (`cudnn_benchmark_speedup`), and the faster setting is kept for what follows.

`--all-layers` then times the whole job the issue sizes: every unit of the model's default
layers (torchvision alexnet: conv1..fc8, 10,344 units), one seed each, `--all-iters`
iterations (default 200), in batches of `--batch` units: `all_units`, `all_units_s` (wall
time, device synchronized) and `all_units_s_per_layer`. A conv unit's objective is its
channel's centre neuron, as in the featvis stage. `--all-max-s` stops early (after the batch
that passes it) and then reports the units done and `all_units_s_extrapolated`.
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's atlas

import torch
from torch.utils.flop_counter import FlopCounterMode

from atlas.context import pick_device  # noqa: E402
from atlas.models import get_spec, load_model
from atlas.priors.dgn import DGNSettings, center_crop, dgn_am, initial_codes
from atlas.priors.generator import FC6_FULL, DeePSiM, family_config
from atlas.priors.genfile import CodeStats, GeneratorBundle, load_generator
from atlas.priors.objectives import unit_objective
from atlas.priors.target import NetTarget
from atlas.resources import weights_path


def make_generator(kind: str, spec, code_dim: int, device) -> tuple[GeneratorBundle, str]:
    """'shipped' (the model's generator file), 'full' (FC6_FULL, random weights), 'small'
    (a random member of the family sized for the model), or a path."""
    if kind == "shipped":
        if not spec.generator or not weights_path(spec.generator).is_file():
            raise SystemExit(f"model {spec.name} ships no generator; use --generator full or small")
        return load_generator(weights_path(spec.generator), device), spec.generator
    if kind in ("full", "small"):
        cfg = FC6_FULL if kind == "full" else family_config(code_dim, spec.input_size)
        if cfg.code_dim != code_dim:
            raise SystemExit(f"--generator {kind} has a {cfg.code_dim}-d code; {spec.name}'s is {code_dim}-d")
        net = DeePSiM(cfg).init_weights(torch.Generator().manual_seed(0)).eval().requires_grad_(False)
        # random weights: bounds in the range act_max.py's fc6 file reports (3..17)
        ub = 3 + 14 * torch.rand(code_dim, generator=torch.Generator().manual_seed(1))
        return GeneratorBundle(net, CodeStats(ub=ub, source="synthetic")).to(device), f"{kind} (random)"
    return load_generator(Path(kind), device), Path(kind).name


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def matmul_flops(device, dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    secs = timed(lambda: [a @ b for _ in range(reps)], device)
    return 2 * n ** 3 * reps / secs


def iteration_flops(bundle, target, objective, z, autocast: bool) -> int:
    """FLOPs of one DGN-AM iteration: the same passes as dgn_am's loop (generator forward,
    network forward and backward to the image, generator backward to the code), counted
    by FlopCounterMode (which needs .backward() rather than autograd.grad)."""
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with FlopCounterMode(display=False) as counter:
        z = z.clone().requires_grad_(True)
        with amp:
            x0 = center_crop(bundle.images(z), target.input_size)
        xin = x0.detach().float().requires_grad_(True)
        with amp:
            act = objective(target(xin, objective.nodes))
        act.float().sum().backward()
        x0.backward(xin.grad.to(x0.dtype))
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="worldnet")
    ap.add_argument("--weights", help="default: the model's own weights (worldnet) or random (others)")
    ap.add_argument("--generator", default=None, help="shipped | full | small | PATH (default: shipped "
                                                      "for worldnet, full otherwise)")
    ap.add_argument("--layer", default="fc8")
    ap.add_argument("--batch", type=int, default=None, help="units per batched run (default 128 CPU, 512 CUDA)")
    ap.add_argument("--loop-units", type=int, default=6, help="units timed one at a time")
    ap.add_argument("--iters", type=int, default=30, help="DGN iterations per optimization")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--nchw", action="store_true", help="keep NCHW memory format (default: channels_last)")
    ap.add_argument("--no-autocast", action="store_true", help="no bf16 autocast on CUDA")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top operators of a batched run")
    ap.add_argument("--all-layers", action="store_true", help="also time every unit of the default layers")
    ap.add_argument("--all-iters", type=int, default=200, help="iterations per unit for --all-layers")
    ap.add_argument("--all-max-s", type=float, default=None, help="stop --all-layers after this many seconds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    spec = get_spec(args.model)
    weights = args.weights or (None if spec.name in ("worldnet", "cifarnet") else "random")
    model = load_model(spec, weights).to(device)
    target = NetTarget(model, spec, device, channels_last=not args.nchw)
    node = spec.resolve_layer(args.layer)
    with torch.no_grad():
        probe = target.net_for([node, spec.generator_code])(torch.zeros(1, 3, spec.input_size, spec.input_size,
                                                                        device=device))
    units_in_layer, code_dim = probe[node].shape[1], probe[spec.generator_code].flatten(1).shape[1]
    bundle, gen_name = make_generator(args.generator or ("shipped" if spec.name == "worldnet" else "full"),
                                      spec, code_dim, device)
    if not args.nchw:
        bundle.net.to(memory_format=torch.channels_last)
    autocast = device.type == "cuda" and not args.no_autocast
    batch = args.batch or (512 if device.type == "cuda" else 128)
    settings = DGNSettings(iters=args.iters)

    def run(units: list[int], seeds: list[int]):
        obj = unit_objective(node, torch.tensor(units) % units_in_layer)
        return dgn_am(bundle, target, obj, initial_codes(seeds, code_dim, device), settings, autocast=autocast)

    run([0], [0])  # warm-up (allocations, kernel selection)
    loop_secs = timed(lambda: [run([u], [u]) for u in range(args.loop_units)], device)
    loop_rate = args.loop_units / loop_secs
    units = list(range(batch))
    run(units[:min(batch, 8)], units[:min(batch, 8)])
    batch_secs = timed(lambda: run(units, units), device)
    batch_rate = batch / batch_secs
    cudnn = {}
    if device.type == "cuda":  # the same batched run with cuDNN's autotuner on and off, side by side
        cudnn[torch.backends.cudnn.benchmark] = batch_rate
        torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
        run(units, units)  # autotuning happens on the first call of each shape
        cudnn[torch.backends.cudnn.benchmark] = batch / timed(lambda: run(units, units), device)
        torch.backends.cudnn.benchmark = cudnn[True] > cudnn[False]
        batch_rate = max(cudnn.values())
        batch_secs = batch / batch_rate
    flops_per_iter = iteration_flops(bundle, target, unit_objective(node, torch.tensor(units) % units_in_layer),
                                     initial_codes(units, code_dim, device), autocast)
    achieved = flops_per_iter * args.iters / batch_secs
    mm_dtype = torch.bfloat16 if autocast else torch.float32
    peak = matmul_flops(device, mm_dtype, 4096 if device.type == "cuda" else 1024,
                        50 if device.type == "cuda" else 8)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({torch.get_num_threads()} threads)"
    result = {"device": name, "model": spec.name, "generator": gen_name, "layer": node, "batch": batch,
              "iters": args.iters, "autocast_bf16": autocast, "channels_last": not args.nchw,
              "batched_vs_loop": round(batch_rate / loop_rate, 2),
              "flop_utilization": round(achieved / peak, 3),
              "units_per_s_batched": round(batch_rate, 3), "units_per_s_loop": round(loop_rate, 3),
              "gflop_per_unit_iter": round(flops_per_iter / batch / 1e9, 5),
              "achieved_gflops": round(achieved / 1e9, 2), "matmul_gflops": round(peak / 1e9, 2)}
    if cudnn:
        result.update({"cudnn_benchmark_speedup": round(cudnn[True] / cudnn[False], 3),
                       "cudnn_benchmark": torch.backends.cudnn.benchmark})
    print(f"{batch} units batched: {batch_rate:.2f} units/s; one at a time: {loop_rate:.2f} units/s", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            run(units, units)
            sync(device)
        key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=18), flush=True)
    if args.all_layers:
        result.update(time_all_layers(spec, target, bundle, code_dim, device, batch, args.all_iters, autocast,
                                      args.all_max_s))
    print(json.dumps(result))


def time_all_layers(spec, target, bundle, code_dim: int, device, batch: int, iters: int, autocast: bool,
                    max_s: float | None) -> dict:
    """Every unit of the spec's default layers, one seed each, `iters` DGN-AM iterations,
    `batch` units a run; wall time with the device synchronized."""
    nodes = [spec.resolve_layer(a) for a in spec.default_layers]
    with torch.no_grad():
        probe = target.net_for(nodes)(torch.zeros(1, 3, spec.input_size, spec.input_size, device=device))
    sizes = {node: probe[node].shape[1] for node in nodes}
    total = sum(sizes.values())
    settings = DGNSettings(iters=iters)
    done, per_layer, stopped = 0, {}, False
    sync(device)
    t0 = time.perf_counter()
    for alias, node in zip(spec.default_layers, nodes):
        t_layer = time.perf_counter()
        for start in range(0, sizes[node], batch):
            units = list(range(start, min(sizes[node], start + batch)))
            dgn_am(bundle, target, unit_objective(node, torch.tensor(units)), initial_codes(units, code_dim, device),
                   settings, autocast=autocast)
            done += len(units)
            if max_s is not None and time.perf_counter() - t0 > max_s:
                stopped = True
                break
        sync(device)
        per_layer[alias] = round(time.perf_counter() - t_layer, 2)
        elapsed = time.perf_counter() - t0
        print(f"{alias}: {sizes[node]} units in {per_layer[alias]:.1f} s; {done}/{total} units, {elapsed:.1f} s",
              flush=True)
        if stopped:
            break
    secs = time.perf_counter() - t0
    out = {"all_units": total, "all_units_done": done, "all_iters": iters, "all_units_s": round(secs, 2),
           "all_units_s_per_layer": per_layer}
    if stopped:
        out["all_units_s_extrapolated"] = round(secs * total / done, 1)
    return out


if __name__ == "__main__":
    main()
