"""Synthetic run folders with every artifact of the contract in ARCHITECTURE.md, written
through the contract's writers (atlas/artifacts): `write_synthetic_run` at any scale, and
`make_run`, a small run with fixed content. The one synthetic writer (outside the package).

Random arrays of the right shapes and dtypes, written through `RunStore.writing` so the
manifests are real. The renderer's tests and `benchmarks/site_speed.py` use it to build
sites at any scale (10,000+ units) without computing anything. The arrays are
consistent with each other where the site relies on it: top-k lists are the top of
`maxact` (kept in memory; the topk stage stores its streamed statistics), histograms count `maxact`, patch boxes and heat grids sit on the top images' encoded views.

`hostile=True` puts markup, quotes and odd Unicode into every user-visible string (class
names, labels, file descriptions, the data set name, the title, a layer alias) so tests
can check that the site escapes them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas.evidence.codec import encode
from atlas.artifacts import dataset, evidence, featvis, figures, maps, topk
from atlas.artifacts.pictures import write_layer
from atlas.artifacts.thumbs import ThumbsWriter
from atlas.evidence.streamstats import UnitStats
from atlas.priors import registry
from atlas.artifacts.store import RunStore, stage_key

ALL_STAGES = ("dataset", "topk", "featvis", "evidence", "maps", "figures")
HOSTILE = ('<script>alert("x")</script>', "a&b \"double\" 'single'", "</script><!--", "ünïcødé ☃ \u2028 sep",
           '"><img src=x onerror=alert(1)>', "{{ 7*7 }} ${x}", "back\\slash")
CONCEPTS = ("shape:circle", "shape:square", "shape:star", "color:red", "color:blue", "color:green",
            "texture:stripes", "texture:dots", "texture:checkers", "color:yellow", "shape:ring")


@dataclass
class SyntheticSpec:
    """What to write. Layers are (node name, alias or None, shape (C,H,W) or (C,))."""
    layers: list = field(default_factory=lambda: [
        ("features.conv5", "conv5", (32, 8, 8)), ("classifier.fc7", "fc7", (48,))])
    images: int = 60
    classes: int = 5
    k: int = 6
    thumb: int = 32
    featvis_size: int = 48
    featvis_units: int | None = None   # None: every unit has feature visualizations
    patch: int = 24                    # conv patch window (px of the view)
    view: int = 0                      # top images' side (the input size); 0: the thumbnail size
    priors: tuple = ("dgn", "pixel", "fourier")
    seeds: int = 2
    bins: int = 16
    neighbors: int = 6
    figure_units: int = 2
    hostile: bool = False
    seed: int = 0
    stages: tuple = ALL_STAGES


def alexnet_like(units_total: int = 10_240) -> list:
    """Layer list at the scale of AlexNet (conv3..fc8 are 384+384+256+4096+4096+1000)."""
    layers = [("features.conv3", "conv3", (384, 13, 13)), ("features.conv4", "conv4", (384, 13, 13)),
              ("features.conv5", "conv5", (256, 13, 13)), ("classifier.fc6", "fc6", (4096,)),
              ("classifier.fc7", "fc7", (4096,)), ("classifier.fc8", "fc8", (1000,))]
    scale = units_total / sum(s[0] for _, _, s in layers)
    return [(n, a, (max(1, round(s[0] * scale)), *s[1:])) for n, a, s in layers]


def _smooth(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n photo-like random RGB images: smooth colour fields plus mild noise, uint8.
    PNG compresses them to ~75% like small natural images, so encoding costs are real."""
    cell = max(2, size // 8)
    small = rng.integers(0, 256, (n, size // cell + 2, size // cell + 2, 3), dtype=np.uint8).astype(np.float32)
    g = (np.arange(size) + 0.5) / cell
    i0 = np.floor(g).astype(np.int64)
    f = (g - i0).astype(np.float32)
    rows = small[:, i0] * (1 - f)[None, :, None, None] + small[:, i0 + 1] * f[None, :, None, None]
    img = rows[:, :, i0] * (1 - f)[None, None, :, None] + rows[:, :, i0 + 1] * f[None, None, :, None]
    img += rng.normal(0, 5, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_stage(store: RunStore, name: str, params: dict, deps: dict, fill) -> str:
    with store.writing(name, stage_key(name, 1, params, deps),
                       {"version": 1, "params": params, "deps": list(deps)}) as out:
        summary = fill(Path(out)) or {}
        store.write_summary(out, {**summary, "seconds": 0.01, "synthetic": True})
    return store.key(name)


def _minimal_pdf(text: str) -> bytes:
    """A valid one-page PDF showing `text` (ASCII)."""
    safe = "".join(c for c in text if 32 <= ord(c) < 127).replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 18 Tf 40 100 Td ({safe}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_synthetic_run(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Write a complete run folder at `root` (stages chosen by spec.stages); returns root."""
    spec = spec or SyntheticSpec()
    from atlas.config import Config
    root = Path(root)
    store = RunStore(root)
    rng = np.random.default_rng(spec.seed)
    n, t, k = spec.images, spec.thumb, min(spec.k, spec.images)
    hostile = spec.hostile
    class_names = [f"class {c}" for c in range(spec.classes)]
    if hostile:
        class_names = [HOSTILE[c % len(HOSTILE)] + f" #{c}" for c in range(spec.classes)]
    title = 'synthetic <i>atlas</i> & "friends"' if hostile else "synthetic atlas"
    layer_list = [(name, ('fc"7<' if hostile and alias == "fc7" else alias), tuple(shape))
                  for name, alias, shape in spec.layers]
    cfg = Config(model="synthnet", data="synthetic", out=str(root), title=title,
                 layers=[name for name, _, _ in layer_list], topk=k, seeds=spec.seeds,
                 priors=[p for p in spec.priors], neighbors=spec.neighbors)
    root.mkdir(parents=True, exist_ok=True)
    store.mark_format()
    store.write_config(cfg.resolved())

    view_cache: dict[int, bytes] = {}
    encode_clock = [0.0]   # seconds spent encoding views, as the evidence stage counts them

    def _view_bytes(i: int, v: int) -> bytes:
        """Image i's view, encoded once for all layers (equal pixels, equal bytes)."""
        if i not in view_cache:
            px = thumbs[i] if v == t else _smooth(np.random.default_rng((spec.seed, i)), 1, v)[0]
            t0 = time.perf_counter()
            view_cache[i] = encode(px, "jpeg", 80)
            encode_clock[0] += time.perf_counter() - t0
        return view_cache[i]

    labels = rng.integers(0, spec.classes, n)
    labels[::17] = -1  # some images without a class
    thumbs = _smooth(rng, n, t)
    keys: dict[str, str] = {}

    def fill_dataset(out: Path) -> dict:
        desc = [(f'{HOSTILE[i % len(HOSTILE)]}/img{i}.png' if hostile else f"synthetic/img{i}.png") for i in range(n)]
        name = "synth <b>set</b> & co" if hostile else "synthetic"
        skipped = [{"path": "broken/file.jpg", "reason": "cannot identify image file"}]
        if hostile:
            skipped.append({"path": "<b>bad</b>.png", "reason": '<script>alert("skip")</script>'})
        dataset.write(out, {"name": name, "fingerprint": f"synthetic-{spec.seed}-{n}", "class_names": class_names,
                            "count": n}, skipped, labels, desc)
        return {"images": n, "skipped": len(skipped)}

    def fill_thumbs(out: Path) -> dict:
        return write_thumbs(out, thumbs)

    maxact: dict[str, np.ndarray] = {}
    for name, _, shape in layer_list:
        c = shape[0]
        pref = rng.integers(0, spec.classes, c)
        scale = rng.gamma(2.0, 1.0, c).astype(np.float32)
        m = (rng.gamma(1.5, 1.0, (n, c)) * scale).astype(np.float32)
        m += 2.5 * scale * (labels[:, None] == pref[None, :])
        m[:, ::23] = 0.0  # dead units
        maxact[name] = m

    if "dataset" in spec.stages:
        keys["dataset"] = _write_stage(store, "dataset", {"synthetic": spec.seed, "images": n}, {}, fill_dataset)
        keys["thumbs"] = _write_stage(store, "thumbs", {"synthetic": spec.seed, "images": n},
                                      {"dataset": keys["dataset"]}, fill_thumbs)

    tops: dict[str, tuple] = {}
    for name, _, shape in layer_list:
        m = maxact[name]
        ids = np.argsort(-m, axis=0, kind="stable")[:k].T.astype(np.int64)
        values = np.take_along_axis(m.T, ids, axis=1).astype(np.float32)
        hw = shape[1:] if len(shape) == 3 else (1, 1)
        pos = np.stack([rng.integers(0, hw[0], ids.shape), rng.integers(0, hw[1], ids.shape)], -1).astype(np.int32)
        if len(shape) == 1:
            pos[:] = 0
        tops[name] = (values, ids, pos)

    def fill_topk(out: Path) -> dict:
        for name, _, shape in layer_list:
            values, ids, pos = tops[name]
            stats = UnitStats(shape[0], spec.classes)
            for a in range(0, n, 4096):
                stats.update(maxact[name][a:a + 4096], labels[a:a + 4096])
            topk.write_layer(out, name, values, ids, pos, None, stats.arrays())
        topk.write_layers(out, [topk.LayerEntry(nm, al, "conv" if len(sh) == 3 else "fc", tuple(sh), sh[0])
                                for nm, al, sh in layer_list])
        return {"images": n, "units": sum(sh[0] for _, _, sh in layer_list), "k": k}

    if "topk" in spec.stages:
        keys["topk"] = _write_stage(store, "topk", {"layers": [x[0] for x in layer_list], "k": k},
                                    {"dataset": keys.get("dataset", "")}, fill_topk)

    for name, _, shape in layer_list:
        c = shape[0]
        values, ids, pos = tops[name]
        if "featvis" in spec.stages:
            u = c if spec.featvis_units is None else min(spec.featvis_units, c)

            def fill_featvis(out: Path, u=u, values=values) -> dict:
                s, sz = spec.seeds, spec.featvis_size
                for prior in spec.priors:
                    arr = np.empty((u, s, sz, sz, 3), np.uint8)
                    for a in range(0, u, 512):
                        b = min(u, a + 512)
                        arr[a:b] = _smooth(rng, (b - a) * s, sz).reshape(b - a, s, sz, sz, 3)
                    act = values[:u, :1] * rng.uniform(0.4, 3.0, (u, s))
                    featvis.write_prior(out, prior, arr, act.astype(np.float32))
                    del arr
                encode_s = featvis.write_meta(out, {"priors": list(spec.priors), "seeds": s, "units": u,
                                                    "iterations": {p: 200 for p in spec.priors},
                                                    "crop": [0, 0, sz, sz] if len(shape) == 3 else None,
                                                    "size": sz, "labels": registry.labels(list(spec.priors))})
                return {"units": u, "encode_s": encode_s}   # the sheets, encoded by the contract's writer

            _write_stage(store, f"featvis/{name}", {"layer": name}, {"topk": keys.get("topk", "")}, fill_featvis)

        if "evidence" in spec.stages:
            def fill_evidence(out: Path, c=c, values=values, ids=ids, pos=pos, shape=shape) -> dict:
                v = spec.view or t
                hw = shape[1:] if len(shape) == 3 else (1, 1)
                win = (min(spec.patch, v),) * 2 if len(shape) == 3 else (v, v)
                cy = ((pos[..., 0] + 0.5) * v / hw[0]).astype(int)
                cx = ((pos[..., 1] + 0.5) * v / hw[1]).astype(int)
                boxes = np.stack([np.clip(cy - win[0] // 2, 0, v), np.clip(cx - win[1] // 2, 0, v),
                                  np.clip(cy - win[0] // 2 + win[0], 0, v), np.clip(cx - win[1] // 2 + win[1], 0, v)], -1)
                g = hw if len(shape) == 3 else (6, 6)
                yy = (np.arange(g[0]) + 0.5)[None, None, :, None] * v / g[0] - cy[..., None, None]
                xx = (np.arange(g[1]) + 0.5)[None, None, None, :] * v / g[1] - cx[..., None, None]
                heat = (255 * np.exp(-(yy ** 2 + xx ** 2) / (2 * (v / 6) ** 2))).astype(np.uint8)
                before = encode_clock[0]
                meta = write_layer(out, ids, boxes, heat, lambda i: _view_bytes(i, v), v, v, win,
                                   min(224, max(64, win[0])), heatmap="activation" if len(shape) == 3 else "gradcam")
                encode_s = meta.pop("encode_s") + encode_clock[0] - before   # sheets, and views first seen here
                writer = evidence.EvidenceWriter(out)
                m = maxact[name]
                lo, hi = m.min(0), m.max(0)
                span = np.where(hi > lo, hi - lo, 1.0)
                edges = (lo[:, None] + span[:, None] * np.linspace(0, 1, spec.bins + 1)[None, :]).astype(np.float32)
                idx = np.clip(((m - lo) / span * spec.bins).astype(int), 0, spec.bins - 1)
                hist = np.bincount((np.arange(c)[None, :] * spec.bins + idx).ravel(),
                                   minlength=c * spec.bins).reshape(c, spec.bins).astype(np.int64)
                writer.histograms(hist, edges)
                mean, std = m.mean(0), m.std(0)
                stats, labs = [], []
                top_labels = labels[ids]
                for u in range(c):
                    counts = np.bincount(top_labels[u][top_labels[u] >= 0], minlength=spec.classes)
                    order = np.argsort(-counts, kind="stable")[:3]
                    stats.append({"unit": u, "mean": float(mean[u]), "std": float(std[u]), "max": float(hi[u]),
                                  "selectivity": float((hi[u] - mean[u]) / (hi[u] + 1e-6)), "dead": bool(hi[u] <= 0),
                                  "nonfinite": 0,
                                  "top_classes": [[class_names[j], float(counts[j] / k)] for j in order if counts[j]]})
                    if hi[u] <= 0 or u % 5 == 4:
                        labs.append({"unit": u, "label": None, "score": 0.0, "method": "iou"})
                    else:
                        text = CONCEPTS[(u * 7) % len(CONCEPTS)]
                        if hostile and u % 3 == 0:
                            text = HOSTILE[u % len(HOSTILE)]
                        labs.append({"unit": u, "label": text, "score": float(rng.uniform(0.04, 0.4)),
                                     "method": "iou"})
                writer.records(stats, labs, {"layer": name, "k": k, **meta})
                return {"units": c, "encode_s": encode_s}

            _write_stage(store, f"evidence/{name}", {"layer": name}, {"topk": keys.get("topk", "")}, fill_evidence)

    if "maps" in spec.stages:
        def fill_maps(out: Path) -> dict:
            d = 16
            centers = rng.normal(0, 4, (spec.classes + 1, d)).astype(np.float32)
            feats = (centers[labels] + rng.normal(0, 1, (n, d))).astype(np.float32)
            writer = maps.MapsWriter(out)
            writer.features(feats)
            c2 = rng.uniform(-30, 30, (spec.classes + 1, 2))
            writer.coords("tsne", (c2[labels] + rng.normal(0, 3, (n, 2))).astype(np.float32))
            c3 = rng.uniform(-8, 8, (spec.classes + 1, 2))
            writer.coords("umap", (c3[labels] + rng.normal(0, 1, (n, 2))).astype(np.float32))
            kk = min(spec.neighbors, n - 1)
            nb = np.empty((n, kk), np.int64)
            dist = np.empty((n, kk), np.float32)
            sq = (feats ** 2).sum(1)
            for a in range(0, n, 1024):
                b = min(n, a + 1024)
                d2 = sq[a:b, None] + sq[None, :] - 2 * feats[a:b] @ feats.T
                d2[np.arange(b - a), np.arange(a, b)] = np.inf
                order = np.argsort(d2, axis=1, kind="stable")[:, :kk]
                nb[a:b] = order
                dist[a:b] = np.sqrt(np.maximum(np.take_along_axis(d2, order, 1), 0))
            writer.neighbors(nb, dist)
            for name, _, shape in layer_list:
                cc = rng.uniform(-10, 10, (6, 2))
                writer.unit_map(name, (cc[np.arange(shape[0]) % 6] + rng.normal(0, 2, (shape[0], 2))).astype(np.float32))
            writer.meta({"layer": layer_list[-1][0], "neighbors": kk, "metric": "l2",
                         "tsne": {"perplexity": 30.0}, "umap": {"n_neighbors": 15},
                         "unit_layers": [x[0] for x in layer_list]})
            return {"images": n}

        _write_stage(store, "maps", {"synthetic": spec.seed}, {"topk": keys.get("topk", "")}, fill_maps)

    if "figures" in spec.stages:
        for name, alias, shape in layer_list:
            def fill_figures(out: Path, name=name, shape=shape) -> dict:
                count = min(spec.figure_units, shape[0])
                for u in range(count):
                    figures.figure_path(out, u, "pdf").write_bytes(_minimal_pdf(f"{name} unit {u}"))
                    from atlas.evidence.png import encode_png
                    figures.figure_path(out, u, "png").write_bytes(encode_png(_smooth(rng, 1, 96)[0]))
                return {"figures": count}

            _write_stage(store, f"figures/{name}", {"layer": name}, {"topk": keys.get("topk", "")}, fill_figures)
    return root


def write_thumbs(out: Path, thumbs: np.ndarray) -> dict:
    """A thumbs stage holding every image's thumbnail (a superset of the paged images, which
    the renderer accepts), encoded as the thumbs stage encodes them."""
    t0 = time.perf_counter()
    writer = ThumbsWriter(out, thumbs.shape[1])
    for i in range(len(thumbs)):
        writer.add(i, thumbs[i])
    meta = writer.finish()
    return {"images": meta["count"], "encode_s": time.perf_counter() - t0}   # encoding and writing


# -- a small run with fixed, hand-checkable content (figure and archive tests) ----------------

CLASSES = ["circle", "square", "triangle"]
LAYERS = [topk.LayerEntry("features.conv5", "conv5", "conv", (6, 4, 4), 6),
          topk.LayerEntry("classifier.fc8", "fc8", "fc", (3,), 3)]


def _small_stage(store: RunStore, name: str, params: dict, fill, seconds: float = 0.1) -> None:
    with store.writing(name, f"key-{name}", {"version": 1, "params": params, "deps": []}) as out:
        fill(Path(out))
        store.write_summary(out, {"seconds": seconds})


def make_run(root: Path, n_images: int = 12, k: int = 4, seeds: int = 2, thumb: int = 16,
             featvis_layers: tuple[str, ...] = ("features.conv5",), featvis_units: int = 4,
             evidence_layers: tuple[str, ...] = ("features.conv5",), seed: int = 0) -> Path:
    """A small run folder at `root`: config, dataset, topk and the asked featvis/evidence
    layers (random content of the contract's shapes; even units of conv5 labelled
    "shape:<class>"), written through the artifact writers."""
    rng = np.random.default_rng(seed)
    thumbs = rng.integers(0, 256, (n_images, thumb, thumb, 3), dtype=np.uint8)
    root = Path(root)
    store = RunStore(root)
    root.mkdir(parents=True, exist_ok=True)
    store.mark_format()
    store.write_config({"model": "worldnet", "data": "world", "seed": 0, "seeds": seeds, "world_seed": 2,
                        "title": "synthetic run", "out": str(root)})
    _small_stage(store, "dataset", {"source": "world"}, lambda out: dataset.write(
        out, {"name": "world(seed=2)", "fingerprint": "f" * 64, "class_names": CLASSES, "count": n_images}, [],
        [i % len(CLASSES) for i in range(n_images)], [f"world:2:{i}" for i in range(n_images)]))
    _small_stage(store, "thumbs", {"source": "world"}, lambda out: write_thumbs(out, thumbs))
    tops = {}
    for e in LAYERS:
        values = -np.sort(-rng.normal(size=(e.units, k)).astype(np.float32), axis=1)
        ids = np.stack([rng.permutation(n_images)[:k] for _ in range(e.units)]).astype(np.int64)
        tops[e.name] = (values, ids, np.zeros((e.units, k, 2), dtype=np.int32))

    def fill_topk(out: Path) -> None:
        for name, (values, ids, pos) in tops.items():
            topk.write_layer(out, name, values, ids, pos, None)
        topk.write_layers(out, LAYERS)
    _small_stage(store, "topk", {"model": "worldnet", "weights": "sha256:" + "a" * 64, "k": k,
                                 "layers": [e.name for e in LAYERS]}, fill_topk, seconds=4.0)
    by_name = {e.name: e for e in LAYERS}
    for name in featvis_layers:
        units = min(featvis_units, by_name[name].units)

        def fill_featvis(out: Path, units=units) -> None:
            for prior in ("dgn", "pixel", "fourier"):
                featvis.write_prior(out, prior, rng.integers(0, 256, (units, seeds, thumb, thumb, 3), dtype=np.uint8),
                                    rng.normal(5, 2, (units, seeds)).astype(np.float32))
            featvis.write_meta(out, {"priors": ["dgn", "pixel", "fourier"], "seeds": seeds, "units": units,
                                     "iterations": {"dgn": 5, "pixel": 5, "fourier": 5}, "crop": None,
                                     "labels": registry.labels(["dgn", "pixel", "fourier"])})
        _small_stage(store, featvis.stage(name), {"layer": name}, fill_featvis, seconds=2.5)
    for name in evidence_layers:
        _small_stage(store, evidence.stage(name), {"layer": name},
                     lambda out, e=by_name[name]: _small_evidence(out, e, k, n_images, rng, tops[e.name][1], thumbs),
                     seconds=1.5)
    return root


def _small_evidence(out: Path, layer: topk.LayerEntry, k: int, n_images: int, rng, ids: np.ndarray,
                    thumbs: np.ndarray, patch: int = 8) -> None:
    """Evidence as the evidence stage stores it: the top images' views (the thumbnails,
    encoded once), boxes of `patch` px, heat grids, sheets, histograms, stats and labels."""
    c, t = layer.units, thumbs.shape[1]
    win = (patch, patch) if layer.kind == "conv" else (t, t)
    y0 = rng.integers(0, t - win[0] + 1, (c, k))
    x0 = rng.integers(0, t - win[1] + 1, (c, k))
    boxes = np.stack([y0, x0, y0 + win[0], x0 + win[1]], -1)
    heat = rng.integers(0, 256, (c, k, 4, 4), dtype=np.uint8)
    encoded: dict[int, bytes] = {}

    def view(i: int) -> bytes:
        if i not in encoded:
            encoded[i] = encode(thumbs[i], "jpeg", 90)
        return encoded[i]

    labels = [{"unit": u, "label": f"shape:{CLASSES[u % len(CLASSES)]}" if u % 2 == 0 else None,
               "score": round(float(rng.uniform(0.05, 0.5)), 3), "method": "iou"} for u in range(c)]
    writer = evidence.EvidenceWriter(out)
    writer.histograms(rng.integers(0, n_images, (c, 8)).astype(np.int64),
                      np.tile(np.linspace(0, 1, 9, dtype=np.float32), (c, 1)))
    stats = [{"unit": u, "mean": 0.1, "std": 0.2, "max": 1.0, "selectivity": 0.5, "dead": False, "nonfinite": 0,
              "top_classes": [[CLASSES[0], 0.5]]} for u in range(c)]
    meta = write_layer(out, ids, boxes, heat, view, t, t, win, 64)
    meta.pop("encode_s")
    writer.records(stats, labels, {"layer": layer.name, "k": k, **meta})


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.synthetic OUT [--units N] [--images N] [--hostile]`."""
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--units", type=int, default=0, help="AlexNet-shaped layers with this many units in all")
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--hostile", action="store_true")
    args = ap.parse_args(argv)
    spec = SyntheticSpec(images=args.images, hostile=args.hostile)
    if args.units:
        spec.layers = alexnet_like(args.units)
    print(write_synthetic_run(args.out, spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["SyntheticSpec", "write_synthetic_run", "alexnet_like", "make_run", "ALL_STAGES", "CLASSES", "HOSTILE",
           "LAYERS"]
