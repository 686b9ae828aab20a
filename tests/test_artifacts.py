"""The artifact contract (atlas/artifacts): writers and readers agree, broken files are
named, runs of another format version are refused with exit code 2, and no module outside
the contract opens a stage file."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atlas.artifacts import ArtifactError, Run, RunFormatError, RunNotReadyError, RunStore
from atlas.artifacts import concepts, dataset, evidence, featvis, figures, maps, topk
from atlas.artifacts import thumbs as thumbs_artifact
from atlas.artifacts.store import FORMAT_VERSION, write_json
from atlas.evidence import codec
from atlas.evidence.streamstats import UnitStats

ROOT = Path(__file__).resolve().parents[1]


def _write(store: RunStore, name: str, fill) -> None:
    with store.writing(name, f"key-{name}", {"version": 1, "params": {"p": name}, "deps": []}) as out:
        fill(out)
        store.write_summary(out, {"seconds": 0.5})


def _tiny_run(root: Path, rng=np.random.default_rng(0)) -> dict:
    """Every artifact kind written through its writer; returns what was written."""
    store = RunStore(root)
    store.mark_format()
    store.write_config({"model": "m", "seed": 3})
    n, t, k = 5, 8, 2
    thumbs = rng.integers(0, 256, (n, t, t, 3), dtype=np.uint8)
    info = {"name": "toy", "fingerprint": "f", "class_names": ["a", "b"], "count": n + 1}
    labels = [i % 2 for i in range(n)] + [-1]

    def fill_dataset(out):   # 6 listed: image 5 turns out unusable in the top-k pass
        dataset.write(out, info, [{"path": "dir/", "reason": "unreadable folder"}], labels,
                      (f"{i}.png" if i < n else "bad \u00e9.png" for i in range(n + 1)))
    _write(store, "dataset", fill_dataset)
    entries = [topk.LayerEntry("f.conv", "conv", "conv", (3, 4, 4), 3), topk.LayerEntry("c.fc", None, "fc", (2,), 2)]
    arrays = {}

    def fill_topk(out):
        for e in entries:
            maxact = rng.normal(size=(n, e.units)).astype(np.float32)
            ids = np.argsort(-maxact, axis=0, kind="stable")[:k].T
            values = np.take_along_axis(maxact.T, ids, axis=1)
            pos = rng.integers(0, 4, (e.units, k, 2)).astype(np.int32)
            arrays[e.name] = (values, ids, pos, maxact)
            stats = UnitStats(e.units, 2)
            stats.update(maxact, np.array(labels[:n], np.int64))
            topk.write_layer(out, e.name, values, ids, pos, np.zeros(e.units, np.int64), stats.arrays())
        topk.write_layers(out, entries)
        topk.write_unusable(out, [{"id": n, "path": "bad \u00e9.png", "reason": "broken"}])
    _write(store, "topk", fill_topk)

    def fill_thumbs(out):
        w = thumbs_artifact.ThumbsWriter(out, t)
        for i in range(n):
            w.add(i, thumbs[i])
        w.finish()
    _write(store, thumbs_artifact.STAGE, fill_thumbs)
    imgs = rng.integers(0, 256, (2, 3, 6, 6, 3), dtype=np.uint8)

    def fill_featvis(out):
        featvis.write_prior(out, "pixel", imgs, np.ones((2, 3), np.float32))
        featvis.write_meta(out, {"priors": ["pixel"], "seeds": 3, "units": 2})
    _write(store, featvis.stage("f.conv"), fill_featvis)

    def fill_evidence(out):
        w = evidence.EvidenceWriter(out)
        views = w.views("jpg")
        for i in range(n):
            views.put(i, codec.encode(np.full((8, 8, 3), 10 * i, np.uint8), "jpeg", 100))
        w.heat(np.full((3, k, 2, 2), 9, np.uint8))
        w.histograms(np.ones((3, 4), np.int64), np.tile(np.linspace(0, 1, 5, dtype=np.float32), (3, 1)))
        w.boxes(np.tile(np.array([0, 0, 4, 4], np.int32), (3, k, 1)))
        w.iou(np.full((3, 2), 0.25, np.float32))
        w.records([{"unit": u, "dead": False} for u in range(3)],
                  [{"unit": 0, "label": "x", "score": 0.3}, {"unit": 1, "label": None}],
                  {"k": k, "ext": "jpg", "input_size": 8, "display_size": 8, "patch_window": [4, 4], "patch_size": 4})
    _write(store, evidence.stage("f.conv"), fill_evidence)

    def fill_concepts(out):
        concepts.write_concepts(out, np.zeros((n, 1, t, t), np.int8), {"kinds": ["shape"], "names": {"shape": ["o", "x"]},
                                                                      "concepts": ["shape:o", "shape:x"]})
    _write(store, concepts.CONCEPTS, fill_concepts)

    def fill_dissect(out):
        concepts.write_dissect_layer(out, "f.conv", np.full((3, 2), 0.5), np.zeros(3))
        concepts.write_dissect_meta(out, {"concepts": ["shape:o", "shape:x"], "quantile": 0.01, "mask_size": t,
                                          "layers": {"f.conv": {"threshold_images": n}}})
    _write(store, concepts.DISSECT, fill_dissect)

    def fill_maps(out):
        w = maps.MapsWriter(out)
        w.sample(np.arange(n, dtype=np.int64))   # the usable images
        w.features(np.ones((n, 4), np.float32))
        w.neighbors(np.tile(np.arange(2, dtype=np.int64), (n, 1)), np.ones((n, 2), np.float32))
        w.coords("tsne", np.zeros((n, 2), np.float32))
        w.unit_map("c.fc", np.ones((2, 2), np.float32))
        w.meta({"layer": "c.fc"})
    _write(store, maps.STAGE, fill_maps)

    def fill_figures(out):
        figures.figure_path(out, 0, "png").write_bytes(b"png")
        figures.figure_path(out, 9, "png").write_bytes(b"beyond the layer")
        figures.write_meta(out, {"units": [0]})
    _write(store, figures.stage("f.conv"), fill_figures)
    return {"thumbs": thumbs, "arrays": arrays, "imgs": imgs, "info": info}


def test_featvis_sheets_are_encoded_by_the_writer(tmp_path, monkeypatch):
    """The featvis writer stores the site's pictures: lossless PNG sprite sheets whose slot i
    holds row i's strip (every prior's seeds of one tile size side by side; a group per
    size), `per` strips a sheet, `cols` across, padded with PAD; `sheet_place` finds each tile."""
    from PIL import Image
    monkeypatch.setattr(featvis, "SHEET_UNITS", 9)    # 12 rows: two sheets, the last one smaller
    rng = np.random.default_rng(1)
    rows = 12
    a = rng.integers(0, 256, (rows, 2, 6, 6, 3), dtype=np.uint8)     # two priors of one size: one group
    b = rng.integers(0, 256, (rows, 2, 6, 6, 3), dtype=np.uint8)
    c = rng.integers(0, 256, (rows, 1, 4, 5, 3), dtype=np.uint8)     # another size: a second group
    for prior, arr in (("a", a), ("b", b), ("c", c)):
        featvis.write_prior(tmp_path, prior, arr, np.ones(arr.shape[:2], np.float32))
    units = [7, 2, 9, 30, 31, 32, 33, 34, 35, 36, 37, 38]   # --units: slot i is row i, whatever the unit
    seconds = featvis.write_meta(tmp_path, {"priors": ["a", "b", "c"], "seeds": 2, "units": units})
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert seconds >= 0 and meta["sheets"] == [
        {"name": "fv0", "tile": [6, 6], "parts": [["a", 0, 2], ["b", 2, 2]], "tiles": 4, "units": rows,
         "per": 9, "cols": 2, "count": 2},
        {"name": "fv1", "tile": [4, 5], "parts": [["c", 0, 1]], "tiles": 1, "units": rows, "per": 9, "cols": 3,
         "count": 2}]
    sheets = {(g, s): np.asarray(Image.open(tmp_path / f"sheets/{g}-{s}.png")) for g in ("fv0", "fv1") for s in (0, 1)}
    assert sheets["fv0", 0].shape == (5 * 6, 2 * 4 * 6, 3) and sheets["fv0", 1].shape == (2 * 6, 2 * 4 * 6, 3)
    assert sheets["fv1", 0].shape == (3 * 4, 3 * 5, 3) and sheets["fv1", 1].shape == (1 * 4, 3 * 5, 3)
    groups = {g["name"]: g for g in meta["sheets"]}
    for row in range(rows):
        for group, tiles in (("fv0", [a[row, 0], a[row, 1], b[row, 0], b[row, 1]]), ("fv1", [c[row, 0]])):
            h, w = groups[group]["tile"]
            for j, tile in enumerate(tiles):
                s, x, y, tx, ty = featvis.sheet_place(groups[group], row, j)
                got = sheets[group, s]
                assert got.shape[:2] == (ty * h, tx * w)
                assert np.array_equal(got[y * h:(y + 1) * h, x * w:(x + 1) * w], tile)   # lossless, in place
    assert (sheets["fv0", 0][4 * 6:, 4 * 6:] == featvis.PAD).all()   # slot 9 of sheet 0: padding
    assert (sheets["fv0", 1][6:, 4 * 6:] == featvis.PAD).all()
    assert not (tmp_path / "sheets/fv0-2.png").exists() and not (tmp_path / "strips").exists()


def test_sheet_layout_bounds_the_pixels_of_a_sheet():
    for tiles, h, w in [(6, 64, 64), (6, 224, 224), (1, 112, 112), (40, 500, 500), (2, 8, 8)]:
        per, cols = featvis.sheet_layout(tiles, h, w)
        rows = -(-per // cols)
        assert 1 <= per <= featvis.SHEET_UNITS and 1 <= cols <= per
        assert per == 1 or per * tiles * h * w <= featvis.SHEET_PIXELS
        assert max(cols * tiles * w, rows * h) <= 2.5 * min(cols * tiles * w, rows * h) or per < 4   # about square


def test_featvis_without_sheets_is_refused(tmp_path):
    """A featvis folder from before the sprite sheets were encoded there names itself and what to do."""
    store = RunStore(tmp_path)
    store.mark_format()

    def fill(out):
        featvis.write_prior(out, "pixel", np.zeros((1, 1, 4, 4, 3), np.uint8), np.ones((1, 1), np.float32))
        write_json(out / "meta.json", {"priors": ["pixel"], "seeds": 1, "units": 1,
                                       "strips": [{"name": "fv0", "tile": [4, 4], "parts": [["pixel", 0, 1]]}]})
    _write(store, featvis.stage("f.conv"), fill)
    with pytest.raises(ArtifactError, match="no encoded sprite sheets.*atlas run"):
        featvis.read(store, "f.conv", 4)


def test_every_kind_round_trips(tmp_path):
    written = _tiny_run(tmp_path)
    run = Run(tmp_path)
    assert run.config == {"model": "m", "seed": 3}
    ds = run.dataset
    assert ds.count == 6 and ds.usable_count == 5 and ds.labels.tolist() == [0, 1, 0, 1, 0, -1]
    assert isinstance(ds.labels, np.memmap) and ds.desc(1) == "1.png" and ds.desc(5) == "bad \u00e9.png"
    assert ds.usable.tolist() == [True] * 5 + [False] and ds.class_counts().tolist() == [3, 2, 0]
    assert ds.skipped == [{"path": "dir/", "reason": "unreadable folder"}, {"path": "bad \u00e9.png", "reason": "broken"}]
    th = run.thumbs
    assert th.ids.tolist() == list(range(5)) and th.size == 8 and th.meta["sheets"] == 1
    assert np.abs(th[2].astype(int) - written["thumbs"][2]).mean() < 40   # JPEG of the same pixels
    assert th.path(4).is_file() and not th.has(5)
    assert [e.name for e in run.topk.layers] == ["f.conv", "c.fc"] and run.topk.entry("conv").name == "f.conv"
    assert run.topk.entry("f.conv").grid == (4, 4) and run.topk.entry("c.fc").grid == ()
    for name, (values, ids, pos, maxact) in written["arrays"].items():
        layer = run.topk.layer(name)
        assert np.array_equal(layer.values, values) and np.array_equal(layer.ids, ids)
        assert np.array_equal(layer.pos, pos) and layer.k == 2
        finite_max = maxact.max(axis=0)
        assert np.allclose(layer.data_max(), finite_max)   # from the streamed statistics
        assert UnitStats.from_arrays(layer.stats_arrays()).count.tolist() == [5] * len(finite_max)
    fv = run.featvis("f.conv")
    assert fv.priors == ["pixel"] and fv.units == 2 and fv.seeds == 3 and fv.unit_ids == [0, 1]
    assert np.array_equal(fv.images["pixel"], written["imgs"]) and fv.row_of(1) == 1 and fv.row_of(2) is None
    assert run.featvis("c.fc") is None and run.evidence("c.fc") is None
    ev = run.evidence("f.conv")
    pics = ev.pictures
    ids = written["arrays"]["f.conv"][1]
    assert abs(int(pics.view(3)[0, 0, 0]) - 30) <= 2 and int(pics.heat[0, 0, 0, 0]) == 9 and ev.heatmaps
    assert pics.patch(2, 1).shape == (4, 4, 3) and abs(int(pics.patch(2, 1)[0, 0, 0]) - 10 * int(ids[2, 1])) <= 2
    assert ev.labels[0]["label"] == "x" and ev.labels[1] is None and ev.labels[2] is None
    assert ev.iou().shape == (3, 2) and ev.meta["k"] == 2
    found = run.concepts()
    assert found.sizes == [2] and found.masks.shape == (5, 1, 8, 8)
    assert run.dissection().iou("f.conv").dtype == np.float32
    assert run.dissection().layer_info("f.conv")["threshold_images"] == 5
    assert set(run.maps.coords) == {"tsne"} and run.maps.unit_maps["c.fc"].shape == (2, 2)
    assert maps.read_features(run.store).shape == (5, 4)
    figs = run.figures("f.conv")
    assert list(figs.files) == [0] and set(figs.sha) == {"0.png"}   # unit 9 is not a unit of the layer
    assert run.store.summary("topk") == {"seconds": 0.5}


def _replace(store: RunStore, stage: str, rel: str, value) -> None:
    """Overwrite one stage file and its manifest entry, as a stage with a bug would write it."""
    path = store.stage_dir(stage) / rel
    np.save(path, value) if isinstance(value, np.ndarray) else write_json(path, value)
    man = store.manifest(stage) or json.loads((store.stage_dir(stage) / "manifest.json").read_text())
    man["files"][rel]["bytes"] = path.stat().st_size
    write_json(store.stage_dir(stage) / "manifest.json", man)


def test_broken_artifacts_are_named(tmp_path):
    _tiny_run(tmp_path)
    store = RunStore(tmp_path)
    _replace(store, "topk", "f.conv/pos.npy", np.zeros((3, 2), np.int32))   # one dimension short
    with pytest.raises(ArtifactError, match=r"pos\.npy: expected 3 dimensions"):
        Run(tmp_path).topk.layer("f.conv")
    _replace(store, "topk", "f.conv/pos.npy", np.zeros((3, 2, 2), np.int32))
    _replace(store, "topk", "f.conv/ids.npy", np.full((3, 2), 99, np.int64))
    with pytest.raises(ArtifactError, match=r"ids\.npy: image ids beyond the data set's 6 images"):
        Run(tmp_path).topk.layer("f.conv")
    _replace(store, "topk", "f.conv/ids.npy", np.zeros((3, 2), np.int64))
    _replace(store, "topk", "f.conv/nonfinite.npy", np.zeros(4, np.int64))
    with pytest.raises(ArtifactError, match=r"nonfinite\.npy: dimension 0 is 4, expected 3"):
        Run(tmp_path).topk.layer("f.conv")
    _replace(store, "topk", "f.conv/nonfinite.npy", np.zeros(3, np.int64))
    _replace(store, "dataset", "labels.npy", np.zeros(5, np.int32))
    with pytest.raises(ArtifactError, match=r"labels\.npy: dimension 0 is 5, expected 6"):
        Run(tmp_path).dataset
    _replace(store, "dataset", "labels.npy", np.zeros(6, np.int32))
    offsets = np.load(store.stage_dir("dataset") / "path_offsets.npy")
    _replace(store, "dataset", "path_offsets.npy", np.arange(7, dtype=np.int64) * 1000)
    with pytest.raises(ArtifactError, match=r"path_offsets\.npy: offsets end at 6000"):
        Run(tmp_path).dataset
    _replace(store, "dataset", "path_offsets.npy", offsets)
    _replace(store, "evidence/f.conv", "stats.json", [{"unit": 7}])
    with pytest.raises(ArtifactError, match=r"stats\.json: bad record"):
        Run(tmp_path).evidence("f.conv")
    _replace(store, "evidence/f.conv", "stats.json", [])
    _replace(store, "evidence/f.conv", "heat.npy", np.zeros((3, 1, 2, 2), np.uint8))
    with pytest.raises(ArtifactError, match=r"heat\.npy: shape \(3, 1, 2, 2\) does not fit the top-k lists"):
        Run(tmp_path).evidence("f.conv")
    _replace(store, "evidence/f.conv", "heat.npy", np.zeros((3, 2, 2, 2), np.uint8))
    _replace(store, "evidence/f.conv", "hist_edges.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(ArtifactError, match=r"hist_edges\.npy: shape \(3, 4\) does not fit"):
        Run(tmp_path).evidence("f.conv")
    _replace(store, "featvis/f.conv", "meta.json", {"priors": ["pixel", "dgn"]})
    with pytest.raises(ArtifactError, match=r"lists priors \['dgn'\] but their .npy files are missing"):
        Run(tmp_path).featvis("f.conv")
    _replace(store, "maps", "neighbors.npy", np.full((5, 2), 6, np.int64))
    with pytest.raises(ArtifactError, match=r"neighbors\.npy: image ids outside 0..5"):
        Run(tmp_path).maps
    with pytest.raises(ValueError, match="do not agree"):
        featvis.write_prior(tmp_path, "pixel", np.zeros((2, 3, 4, 4, 3), np.uint8), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="do not agree"):
        topk.write_layer(tmp_path, "x", np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), None, None)


def test_missing_stages_and_format_versions(tmp_path):
    with pytest.raises(RunNotReadyError, match="no finished dataset and topk stage"):
        Run(tmp_path)
    _tiny_run(tmp_path)
    store = RunStore(tmp_path)
    assert store.format_version() == FORMAT_VERSION
    (store.stages_dir / "format.json").unlink()      # a run made before the record existed
    assert store.format_version() == 1
    with pytest.raises(RunFormatError, match=rf"older atlas \(run format 1; this atlas reads format {FORMAT_VERSION}\)"):
        Run(tmp_path)
    write_json(store.stages_dir / "format.json", {"format": "atlas-run", "version": FORMAT_VERSION + 1})
    with pytest.raises(RunFormatError, match="newer atlas .*upgrade atlas"):
        Run(tmp_path)
    write_json(store.stages_dir / "format.json", {"format": "atlas-run", "version": 0})
    with pytest.raises(RunFormatError, match=r"older atlas .*atlas run --out NEW_FOLDER"):
        Run(tmp_path)
    write_json(store.stages_dir / "format.json", {"format": "something else", "version": 1})
    with pytest.raises(RunFormatError, match="not an atlas run format record"):
        Run(tmp_path)


@pytest.mark.parametrize("command", [["render"], ["figure", "--units", "conv:0", "--out", "x.pdf"],
                                     ["archive", "--out", "x.zip"], ["demo", "--quick", "--out"]])
def test_cli_refuses_another_format_with_exit_2(tmp_path, command):
    """render, figure, archive and a run into the folder all stop before touching it."""
    _tiny_run(tmp_path / "run")
    write_json(tmp_path / "run" / "stages" / "format.json", {"format": "atlas-run", "version": FORMAT_VERSION + 5})
    before = sorted(p.name for p in (tmp_path / "run" / "stages").iterdir())
    if command[0] == "demo":
        args = [*command, str(tmp_path / "run")]
    else:
        args = [command[0], str(tmp_path / "run"), *[str(tmp_path / a) if a.startswith("x.") else a for a in command[1:]]]
    proc = subprocess.run([sys.executable, "-m", "atlas", *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "newer atlas" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "run" / "stages").iterdir()) == before


# -- nothing outside the contract opens a stage file ----------------------------------------

MODULE_IO = {"np": {"load", "save", "savez", "savez_compressed", "fromfile"}, "json": {"load", "dump"},
             "numpy": {"load", "save", "savez", "savez_compressed", "fromfile"}}
ANY_IO = {"open_memmap", "read_json", "write_json", "read_text", "write_text", "read_bytes", "write_bytes"}
STAGE_PATHS = {"stage_dir", "stages_dir"}  # partial_dir holds chunks, read and written by store.save_chunk/load_chunk
# modules that do file I/O on files that are not stage artifacts, and what those files are
NOT_STAGE_FILES = {
    "atlas/config.py": "TOML config files",
    "atlas/memory.py": "the process's own memory figures (/proc/self/status)",
    "atlas/data/sources.py": "the data set's image files",
    "atlas/data/bigsources.py": "ImageNet / WebDataset files and their meta files",
    "atlas/priors/genfile.py": "generator weight files",
    "atlas/models/checkpoint.py": "classifier checkpoints",
    "atlas/models/user.py": "a user's model factory file, hashed for its identity",
    "atlas/render/writer.py": "the site's output files and its render record",
    "atlas/archive/pack.py": "copies every run file's bytes into the archive (never interprets a stage file)",
    "atlas/archive/verify.py": "archive members and unpacked folders, hashed byte for byte",
    "atlas/stages/figures.py": "the job a figure worker reads from stdin",
    "atlas/figures/compose.py": "font files and the figure it writes",
    "atlas/train/classifier.py": "training outputs",
    "atlas/train/generator.py": "training outputs",
    "atlas/render/serve.py": "site files it serves",
    "atlas/render/assets.py": "static site assets",
    "atlas/render/build.py": "the renderer's own templates and code, hashed into the render record",
    "atlas/priors/caffe_proto.py": "Caffe generator files it converts",
    "atlas/data/loader.py": "the data set's image files",
}


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in STAGE_PATHS:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Call):
            fn = node.func
            owner = fn.value.id if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) else None
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in ANY_IO or name in MODULE_IO.get(owner, ()) or (name == "open" and isinstance(fn, ast.Name)):
                found.append(f"line {node.lineno}: {name}()")
    return found


def test_no_module_outside_the_contract_opens_a_stage_file():
    """Every read or write of a run's stage files goes through atlas/artifacts: outside it, no
    module names a stage folder (stage_dir, stages_dir, partial_dir) or does file I/O,
    except the listed modules whose files are not stage artifacts."""
    bad = {}
    for path in sorted((ROOT / "atlas").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("atlas/artifacts/"):
            continue
        hits = _offences(path)
        if rel in NOT_STAGE_FILES:
            hits = [h for h in hits if "stage_dir" in h or "stages_dir" in h]
        if hits:
            bad[rel] = hits
    assert not bad, "stage files opened outside atlas/artifacts:\n" + json.dumps(bad, indent=1)


def test_the_scan_sees_an_offence(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("import numpy as np\nx = np.load(store.stage_dir('topk') / 'ids.npy')\n")
    assert sorted(_offences(sample)) == ["line 2: .stage_dir", "line 2: load()"]
