"""Stages `evidence/<layer>`, one per layer: what real images say about each unit.

From the top-k lists and streamed unit statistics of the `topk` stage, and one more forward pass
over the unique top images (cheap), each layer gets:
- `views/<id>.<ext>`: each unique top image, the model's view at the display size, encoded
  once (JPEG or WebP); a patch is the window of a view at its box (not stored again)
- `heat.npy` uint8 (C, k, h, w): heatmaps as small grids, drawn over the views in the browser
- `sheets/{top,patch}-<s>.<ext>`: grid thumbnails, SHEET_UNITS units per sprite strip
- `boxes.npy` int32 (C, k, 4): the receptive-field box (y0, x0, y1, x1) in input pixels
- `hist.npy` int64 (C, B), `hist_edges.npy` float32 (C, B + 1), `stats.json`
- `labels.json`: class names (output layer), NetDissect concepts (conv layers on data with
  concept masks, plus `iou.npy` float32 (C, K)), else the dominant class of the top images
- `meta.json`: receptive field, patch and heatmap geometry, methods, timings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from atlas.artifacts import ArtifactError, Run
from atlas.artifacts import evidence as artifact_evidence
from atlas.artifacts.chunks import chunk_size, run_chunks
from atlas.artifacts.evidence import EvidenceWriter
from atlas.evidence.dissect import concept_labels
from atlas.evidence.gradcam import gradcam, split_head
from atlas.evidence import codec
from atlas.evidence.heatmaps import saliency, unit_scale
from atlas.evidence.images import display_batches, model_input
from atlas.evidence.labels import class_labels, top_class_labels
from atlas.evidence.patches import crop_patch, patch_size
from atlas.evidence.receptive_field import VERSION as RF_VERSION
from atlas.evidence.receptive_field import ReceptiveField, receptive_fields
from atlas.evidence.stats import stream_statistics
from atlas.evidence.streamstats import UnitStats
from atlas.models.layers import LayerInfo, node_names, shared_extractor
from atlas.stages import concepts, dissect
from atlas.stages.base import Stage

VERSION = 3  # 2: statistics from the streamed stats.npz; 3: encoded views, heat grids, sheets
MAX_DISPLAY = 256     # default cap of the display size (px)
SHEET_THUMB = 112     # grid thumbnails (px): the layer grid's default cell
SHEET_UNITS = 256     # units per grid sprite strip
SALIENCY_GRID = 32    # saliency heatmaps are stored as a grid this wide (at most the input)


def make(ctx) -> list[Stage]:
    """One evidence stage per layer. Its inputs: dataset and topk, and on data with concept
    masks the concepts and dissect stages (planned before it by the registry)."""
    stages: list[Stage] = []
    deps: tuple[str, ...] = ("dataset", "topk")
    with_concepts = concepts.available(ctx)
    if with_concepts:
        deps += ("concepts",) + (("dissect",) if dissect.conv_layers(ctx) else ())
    output = node_names(ctx.model)[-1]
    fields = receptive_fields(ctx.model, ctx.spec.input_size, ctx.layers)
    cfg = ctx.cfg
    for layer in ctx.layers:
        dissected = with_concepts and layer.kind == "conv"
        params = {**ctx.model_params(), "layer": layer.name, "k": cfg.topk, "patch_size": cfg.patch_size,
                  "display_size": display_size(ctx), "image_format": cfg.image_format,
                  "image_quality": cfg.image_quality,
                  "bins": cfg.hist_bins, "rf_version": RF_VERSION, "output": layer.name == output,
                  "model_classes": list(ctx.spec.class_names or []),
                  "dissect": {"min_iou": cfg.dissect_iou} if dissected else None,
                  "heatmap": heatmap_kind(ctx, layer), **heat_units_param(ctx, layer)}
        fn = partial(run, layer=layer, rf=fields[layer.name], is_output=layer.name == output, dissected=dissected)
        stages.append(Stage(artifact_evidence.stage(layer.name), VERSION, params, fn, deps, sharded=True))
    return stages


def heat_units(ctx, layer) -> list[int] | None:
    """The units whose heatmaps are computed: those chosen by `units` for this layer (a map
    per top image costs a backward pass for fc layers), None (all) when it names none."""
    from atlas.units import parse_units
    chosen = parse_units(ctx.cfg.units)
    if layer.name not in chosen and layer.alias not in chosen:
        return None
    return ctx.units_of(layer)


def heat_units_param(ctx, layer) -> dict:
    units = heat_units(ctx, layer)
    return {} if units is None else {"heat_units": units}


def heatmap_kind(ctx, layer: LayerInfo) -> str:
    """What a layer's heatmaps show: its activation map (conv), else per `fc_heatmaps`:
    input-gradient saliency (a full backward pass per top image; `auto` picks it for inputs up
    to 64 px), a Grad-CAM-style map (HiResCAM) through the head above the last spatial layer
    (`auto` above 64 px, where a full backward per unit and image is too slow on a CPU), or
    nothing."""
    if layer.kind == "conv":
        return "activation"
    mode = ctx.cfg.fc_heatmaps
    if mode == "auto":
        mode = "saliency" if ctx.spec.input_size <= 64 else "gradcam"
    return mode


def run(ctx, out: Path, key: str, layer: LayerInfo, rf: ReceptiveField, is_output: bool, dissected: bool) -> dict:
    cfg, seconds = ctx.cfg, {}
    run_in = Run(ctx.store.root)
    top = run_in.topk.layer(layer.name)
    ids, pos = top.ids, top.pos
    writer = EvidenceWriter(out)

    t0 = time.time()
    size = patch_size(rf, cfg.patch_size)
    boxes = rf.boxes(pos)
    pics = top_images(ctx, key, layer, rf, ids, boxes, writer)  # every rank: its share of the chunks
    if pics is None:
        return {}
    writer.boxes(boxes)
    heat_kind = pics["heatmap"]
    seconds["patches_heatmaps"] = time.time() - t0
    seconds["encode"] = pics["encode_s"]

    t0 = time.time()
    labels, class_names = run_in.dataset.labels, run_in.dataset.class_names
    arrays = top.stats_arrays()
    if arrays is None:
        raise ArtifactError(f"{top.dir}: the top-k stage kept no streamed statistics (stats/)")
    streamed = UnitStats.from_arrays(arrays)
    rows, hist, edges = stream_statistics(streamed, labels, class_names, ids, cfg.hist_bins, top.nonfinite)
    writer.histograms(hist, edges)
    seconds["stats"] = time.time() - t0

    iou, dissect_info = None, None
    if dissected:
        dissection = run_in.dissection()
        iou = dissection.iou(layer.name)
        writer.iou(iou)
        dissect_info = {**dissection.layer_info(layer.name), "min_iou": ctx.cfg.dissect_iou}
    unit_labels = None
    if is_output:
        unit_labels = class_labels(layer.units, list(ctx.spec.class_names or []), class_names, labels, ids)
    if unit_labels is None and iou is not None:
        unit_labels = concept_labels(iou, dissect_info["concepts"], cfg.dissect_iou)
    if unit_labels is None:
        unit_labels = top_class_labels(ids, labels, class_names)
    writer.records(rows, unit_labels, {
        "layer": layer.name, "alias": layer.alias, "kind": layer.kind, "shape": list(layer.shape),
        "k": int(ids.shape[1]), "receptive_field": rf.summary(), "patch_size": size,
        "patch_window": list(rf.size), "input_size": int(ctx.spec.input_size), "heatmap_size": pics["display_size"],
        "heatmap": heat_kind, "bins": cfg.hist_bins,
        **{key: pics[key] for key in ("heat_grid", "display_size", "format", "quality", "ext", "encoder", "patches",
                                      "sheet_units", "sheet_thumb", "sheets")},
        "heatmap_scale": "per unit" if heat_kind == "activation" else "per image",
        "label_method": unit_labels[0]["method"] if unit_labels else None, "dissect": dissect_info,
        "stats_over": "per-image unit maxima (spatial max for conv units)",
        "selectivity": "class selectivity index (mu_max - mu_rest) / (mu_max + mu_rest) over ReLU'd class means",
        "dead": "never above zero over the data set (or never finite); constant: never changes"})  # timings go to summary.json: artifacts stay deterministic
    return {**{f"{k}_s": round(v, 2) for k, v in seconds.items()}, "units": layer.units, "views": pics["views"],
            "view_bytes": pics["view_bytes"], "sheet_bytes": pics["sheet_bytes"], "dead": sum(r["dead"] for r in rows),
            "labelled": sum(r["label"] is not None for r in unit_labels),
            "method": unit_labels[0]["method"] if unit_labels else None}


def display_size(ctx) -> int:
    """D: the side of stored top images; the configured size, else the model's input size
    (at most MAX_DISPLAY), never more than the input (nothing is magnified)."""
    s = int(ctx.spec.input_size)
    return min(s, int(ctx.cfg.display_size or MAX_DISPLAY))


UNITS_PER_CHUNK = 256  # the most units of one chunk of the pictures pass (shared by ranks)


@dataclass(frozen=True)
class PictureSetup:
    """What every chunk of a layer's pictures pass needs: how heatmaps are made, the sizes,
    the codec, and which unit's chunk encodes each top image (`owner`: its first unit)."""
    layer: LayerInfo
    rf: ReceptiveField
    ids: np.ndarray          # (C, k) top image ids
    boxes: np.ndarray        # (C, k, 4)
    kind: str                # activation | gradcam | saliency | none
    head: object             # the Grad-CAM head, or None
    grid: tuple | None       # heat grid (h, w), None for kind 'none'
    display: int             # D
    thumb: int               # sheet tile side
    whole: bool              # the field is the whole image: no patch tiles
    keep: np.ndarray | None  # units whose fc heatmaps are computed; None: all
    owner: dict              # image id -> the unit whose chunk encodes its view


def top_images(ctx, key: str, layer: LayerInfo, rf: ReceptiveField, ids: np.ndarray, boxes: np.ndarray,
               writer: EvidenceWriter) -> dict | None:
    """Write the layer's pictures, computed in chunks of consecutive units shared by the
    ranks of a torchrun job (artifacts/chunks.py); each chunk decodes its units' top images once:

    - `views/<id>.<ext>`: each top image as the model sees it, at the display size, encoded
      once (by the chunk of the first unit that keeps it; rank 0 links each into the stage);
    - `heat.npy` uint8 (C, k, h, w): the heatmap as a small grid in 0..255 (conv: the unit's
      activation map, one scale per unit; fc: Grad-CAM or saliency grid, one scale per image),
      drawn over the view in the browser;
    - `sheets/top-<s>.<ext>` and `sheets/patch-<s>.<ext>`: each unit's first top image and
      top patch as SHEET_THUMB-px tiles, SHEET_UNITS units per strip, for the layer grid.

    Patches are not stored: a patch is the window of the view at the recorded box.
    Returns facts for meta.json (heatmap kind, grid shape, encode seconds, bytes) on rank 0,
    None on the other ranks (their chunks are done)."""
    cfg = ctx.cfg
    units, k = ids.shape
    s_in = int(ctx.spec.input_size)
    d = display_size(ctx)
    fmt, quality = cfg.image_format, cfg.image_quality
    kind = heatmap_kind(ctx, layer)
    head = split_head(ctx.model, layer.name, s_in) if kind == "gradcam" else None
    if kind == "gradcam" and head is None:
        kind = "saliency"  # no clean cut below the layer (e.g. a skip connection around it)
    grid = {"activation": tuple(layer.shape[1:]), "gradcam": tuple(head.cut_shape[1:]) if head else None,
            "saliency": (min(SALIENCY_GRID, s_in),) * 2, "none": None}[kind]
    chosen = heat_units(ctx, layer)
    first, at = np.unique(ids.ravel(), return_index=True)  # ravel is unit-major: first unit keeping each image
    setup = PictureSetup(layer=layer, rf=rf, ids=ids, boxes=boxes, kind=kind, head=head, grid=grid, display=d,
                         thumb=min(SHEET_THUMB, d), whole=tuple(rf.size) == (s_in, s_in),
                         keep=None if chosen is None else np.isin(np.arange(units), chosen),
                         owner=dict(zip(first.tolist(), (at // k).tolist())))
    done = run_chunks(ctx, artifact_evidence.stage(layer.name), key, units, chunk_size(units, UNITS_PER_CHUNK),
                      partial(picture_chunk, ctx, setup), tag="pictures", items="units")
    if ctx.rank != 0:
        return None
    ext = codec.EXT[fmt]
    views = writer.views(ext)
    parts = [c.arrays() for c in done]
    view_bytes = sum(views.place(c.path) for c in done)
    encode_s = float(sum(p["encode_s"] for p in parts))
    if grid:
        writer.heat(np.concatenate([p["heat"] for p in parts]))
    sheet_bytes = 0
    for name in ("top",) + (() if setup.whole else ("patch",)):
        tiles = np.concatenate([p[name] for p in parts])
        nbytes, seconds = writer.sheets(name, tiles, SHEET_UNITS, fmt, quality, ext)
        sheet_bytes, encode_s = sheet_bytes + nbytes, encode_s + seconds
    return {"heatmap": kind, "heat_grid": list(grid) if grid else None,
            **({} if chosen is None or kind == "activation" else {"heat_units": chosen}), "display_size": d, "format": fmt,
            "quality": quality, "ext": ext, "encoder": codec.encoder_version(fmt, quality),
            "patches": "view" if setup.whole else "window", "sheet_units": SHEET_UNITS, "sheet_thumb": setup.thumb,
            "sheets": ["top"] + ([] if setup.whole else ["patch"]), "encode_s": encode_s,
            "view_bytes": view_bytes, "sheet_bytes": sheet_bytes, "views": len(first)}


def picture_chunk(ctx, setup: PictureSetup, u0: int, u1: int, folder: Path) -> dict[str, np.ndarray]:
    """Units [u0, u1) of the layer in one pass over their unique top images: the views this
    chunk owns encoded into `folder/views/`; returns heat grids (uint8), sheet tiles and the
    seconds spent encoding. Depends only on the units, never on which rank runs it."""
    cfg, layer, kind, grid = ctx.cfg, setup.layer, setup.kind, setup.grid
    ids = setup.ids[u0:u1]
    units, k = ids.shape
    fmt, quality = cfg.image_format, cfg.image_quality
    maps = np.zeros((units, k, *grid), dtype=np.float32) if grid else None
    net = shared_extractor(ctx.model, [setup.head.cut if setup.head else layer.name]) if kind != "none" else None
    t = setup.thumb
    sheet_top = np.zeros((units, t, t, 3), np.uint8)
    sheet_patch = None if setup.whole else np.zeros((units, t, t, 3), np.uint8)
    views = EvidenceWriter(folder).views(codec.EXT[fmt])
    encode_s = 0.0
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    bs = cfg.batch_size
    keep = None if setup.keep is None else setup.keep[u0:u1]
    for batch_ids, images in display_batches(ctx, np.unique(flat), bs):
        lo, hi = np.searchsorted(sorted_ids, batch_ids[0]), np.searchsorted(sorted_ids, batch_ids[-1], side="right")
        pairs = order[lo:hi]
        us, rs = pairs // k, pairs % k
        rows = np.searchsorted(batch_ids, flat[pairs])
        pixels = images.permute(0, 2, 3, 1).numpy()
        for i, px in zip(batch_ids.tolist(), pixels):
            if not u0 <= setup.owner[i] < u1:
                continue  # an earlier chunk's unit keeps it too: that chunk encodes it
            shown = codec.resize(px, setup.display)
            t0 = time.perf_counter()
            blob = codec.encode(shown, fmt, quality)
            encode_s += time.perf_counter() - t0
            views.put(i, blob)
        for u, b in zip(us[rs == 0], rows[rs == 0]):
            sheet_top[u] = codec.resize(pixels[b], t)
            if sheet_patch is not None:
                sheet_patch[u] = crop_patch(pixels[b], setup.boxes[u0 + u, 0], setup.rf.size, t)
        if kind == "activation":
            with torch.inference_mode():
                act = net(model_input(ctx.spec, images, ctx.device))[layer.name]
            maps[us, rs] = act[torch.from_numpy(rows).to(act.device), torch.from_numpy(us + u0).to(act.device)].float().cpu().numpy()
        elif keep is not None and kind in ("gradcam", "saliency"):  # backward passes for chosen units only
            sel = keep[us]
            us, rs, rows, pairs = us[sel], rs[sel], rows[sel], pairs[sel]
        if kind == "gradcam" and len(pairs):
            head = setup.head
            with torch.no_grad():
                cut = net(model_input(ctx.spec, images, ctx.device))[head.cut]
            for start in range(0, len(pairs), bs):
                sl = slice(start, start + bs)
                cam = gradcam(head.module, cut[torch.from_numpy(rows[sl]).to(cut.device)],
                              torch.from_numpy(us[sl] + u0).to(cut.device))
                maps[us[sl], rs[sl]] = cam.clamp(0, 1).cpu().numpy()
        elif kind == "saliency" and len(pairs):
            for start in range(0, len(pairs), bs):
                sl = slice(start, start + bs)
                x = model_input(ctx.spec, images[rows[sl]], ctx.device).requires_grad_(True)
                with torch.enable_grad():
                    y = net(x)[layer.name]
                    y[torch.arange(len(x), device=y.device), torch.from_numpy(us[sl] + u0).to(y.device)].sum().backward()
                maps[us[sl], rs[sl]] = saliency(x.grad.detach(), grid[0]).cpu().numpy()
    out = {"top": sheet_top, "encode_s": np.float64(encode_s)}
    if sheet_patch is not None:
        out["patch"] = sheet_patch
    if maps is not None:
        heat = unit_scale(maps) if layer.kind == "conv" else np.nan_to_num(maps, nan=0.0)
        out["heat"] = np.clip(np.round(heat * 255), 0, 255).astype(np.uint8)
    return out
