"""`atlas figure` and the figures stage, on a small synthetic run folder."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from atlas.evidence.codec import decode
from atlas.evidence.patches import crop_patch
from atlas.cli import main
from atlas.figures import FigureError, RunArtifacts, build_grid, make_figure, parse_columns, parse_units
from atlas.stages import figures as figures_stage
from atlas.artifacts import Run
from atlas.artifacts.store import RunStore, read_json
from synthetic import make_run

pypdf = pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run"))


def test_pdf_page_size_and_text(run, tmp_path):
    out = make_figure(run, ["conv5:0,5", "fc8:1"], tmp_path / "f.pdf", cell=0.6)
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) == 1
    page = reader.pages[0]
    # 8 columns (2 DGN seeds, pixel, Fourier, 4 top patches), 3 rows, by hand:
    # width 0.1 + 1.2 + 8 * 0.6 = 6.1 in; height 0.1 + 0.16 + 3 * (0.6 + 0.11) = 2.39 in
    assert float(page.mediabox.width) == pytest.approx(6.1 * 72, abs=0.01)
    assert float(page.mediabox.height) == pytest.approx(2.39 * 72, abs=0.01)
    text = page.extract_text()
    for expected in ("conv5 unit 0", "conv5 unit 5", "fc8 unit 1", "DGN s1", "Fourier s0", "top 4", "n/a"):
        assert expected in text, expected
    label = read_json(run / "stages/evidence/features.conv5/labels.json")[0]
    assert f"{label['label']} ({label['score']:.2f})" in text
    fonts = [f.get_object() for f in page["/Resources"]["/Font"].values()]
    descendants = [d.get_object() for f in fonts for d in f.get("/DescendantFonts", [])]
    assert descendants and all("/FontFile2" in d["/FontDescriptor"] for d in descendants)  # TrueType, embedded


def test_svg_keeps_labels_as_text(run, tmp_path):
    out = make_figure(run, ["conv5:0", "fc8:2"], tmp_path / "f.svg", title="Figure 3")
    root = ET.parse(out).getroot()
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for expected in ("Figure 3", "conv5 unit 0", "fc8 unit 2", "DGN s0", "shape:circle"):
        assert any(expected in t for t in texts), (expected, texts)
    assert len(root.findall(".//{http://www.w3.org/2000/svg}image")) == 2 * 8 - 4  # fc8 has no featvis


def test_png_follows_dpi(run, tmp_path):
    out = make_figure(run, ["fc8:0-2"], tmp_path / "f.png", dpi=120, cell=0.5)
    with Image.open(out) as img:
        # fc8 has no featvis and no evidence: 4 whole top images; 3 rows
        want = ((0.1 + 1.2 + 4 * 0.5) * 120, (0.1 + 0.16 + 3 * 0.61) * 120)  # 396 x 250.8 px
        assert all(abs(got - w) < 1 for got, w in zip(img.size, want)), (img.size, want)


def test_cells_hold_the_artifacts(run):
    art = RunArtifacts(run)
    conv5, fc8 = art.layer("conv5"), art.layer("classifier.fc8")
    cols = parse_columns(None, [conv5, fc8])
    assert [c.header for c in cols] == ["DGN s0", "DGN s1", "pixel s0", "Fourier s0",
                                        "top 1", "top 2", "top 3", "top 4"]
    grid = build_grid([(conv5, 2), (fc8, 1)], cols)
    dgn = np.load(run / "stages/featvis/features.conv5/dgn.npy")
    act = np.load(run / "stages/featvis/features.conv5/dgn_act.npy")
    ev = run / "stages/evidence/features.conv5"
    conv5_ids, boxes = np.load(run / "stages/topk/features.conv5/ids.npy"), np.load(ev / "boxes.npy")
    view = decode((ev / "views" / f"{conv5_ids[2, 1]}.jpg").read_bytes())
    patch = crop_patch(view, boxes[2, 1], (8, 8), 64)   # the window of the stored view at the box
    thumbs = Run(run).thumbs   # the paged images' thumbnails, decoded
    ids = np.load(run / "stages/topk/classifier.fc8/ids.npy")
    row, fc_row = grid.rows
    np.testing.assert_array_equal(row.cells[1].image, dgn[2, 1])
    assert row.cells[1].caption == format(float(act[2, 1]), ".3g")
    np.testing.assert_array_equal(row.cells[5].image, patch)
    assert all(c.image is None for c in fc_row.cells[:4])
    # no evidence for fc8: the top-patch columns show the whole top images
    np.testing.assert_array_equal(fc_row.cells[4].image, thumbs[ids[1, 0]])


def test_columns_spec(run):
    art = RunArtifacts(run)
    conv5, fc8 = art.layer("conv5"), art.layer("fc8")
    assert [c.header for c in parse_columns("dgn:1,patches:2", [conv5])] == ["DGN s0", "top 1", "top 2"]
    assert [c.header for c in parse_columns("pixel:all,images:1", [conv5])] == ["pixel s0", "pixel s1", "image 1"]
    assert [c.kind for c in parse_columns(None, [fc8])] == ["images"] * 4
    with pytest.raises(FigureError, match="no dgn images .*featvis/classifier.fc8"):
        parse_columns("dgn", [fc8])
    with pytest.raises(FigureError, match="only 4 are available"):
        parse_columns("patches:9", [conv5])
    with pytest.raises(FigureError, match="unknown column 'gan'"):
        parse_columns("gan", [conv5])


def test_unit_specs(run):
    art = RunArtifacts(run)
    got = [(layer.name, u) for layer, u in parse_units(["fc8:2,0", "features.conv5:1-3"], art)]
    assert got == [("classifier.fc8", 2), ("classifier.fc8", 0), ("features.conv5", 1),
                   ("features.conv5", 2), ("features.conv5", 3)]
    for spec, message in (["fc8:3", "unit 3 is out of range for fc8 .* 3 units, 0-2"],
                          ["fc9:1", "unknown layer 'fc9'.*conv5 \\(features.conv5\\)"],
                          ["conv5", "expected LAYER:UNITS"],
                          ["conv5:x", "'x' is not a unit index"],
                          ["conv5:3-1", "runs backwards"]):
        with pytest.raises(FigureError, match=message):
            parse_units([spec], art)


def test_cli_errors_name_the_problem(run, tmp_path, capsys):
    assert main(["figure", str(run), "--units", "conv5:99", "--out", str(tmp_path / "f.pdf")]) == 2
    assert "unit 99 is out of range for conv5" in capsys.readouterr().err
    assert main(["figure", str(run), "--units", "conv5:1", "--out", str(tmp_path / "f.jpg")]) == 2
    assert "use one of .pdf, .svg, .png" in capsys.readouterr().err
    assert main(["figure", str(tmp_path), "--units", "conv5:1", "--out", str(tmp_path / "f.pdf")]) == 2
    assert "no finished dataset and topk stage" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.pdf"))


def _stage_output(run: Path, name: str, workers: int, units: int, processes: int) -> Path:
    store = RunStore(run)
    ctx = SimpleNamespace(store=store, cfg=SimpleNamespace(workers=workers), rank=0, world_size=1, work={})
    with store.writing(name, "k", {"version": 1, "params": {}, "deps": []}) as out:
        summary = figures_stage.run(ctx, Path(out), "k", layer="features.conv5", units=units)
    assert summary["units"] == units and summary["processes"] == processes
    return store.stage_dir(name)


def test_stage_writes_one_figure_per_unit_same_bytes_in_two_processes(run, monkeypatch):
    one = _stage_output(run, "figures-test/one", workers=1, units=5, processes=1)
    monkeypatch.setattr(figures_stage, "MIN_UNITS_PER_PROCESS", 2)
    monkeypatch.setattr(figures_stage, "chunk_size", lambda n, most: n)  # one chunk, two processes
    two = _stage_output(run, "figures-test/two", workers=2, units=5, processes=2)
    names = sorted(p.name for p in one.iterdir() if p.suffix in (".pdf", ".png"))
    assert names == sorted(f"{u}.{ext}" for u in range(5) for ext in ("pdf", "png"))
    for name in names:  # the worker process draws exactly what the parent draws
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    meta = read_json(one / "meta.json")
    assert meta["units"] == [0, 1, 2, 3, 4] and meta["columns"][0] == "DGN s0"
    text = pypdf.PdfReader(one / "4.pdf").pages[0].extract_text()
    assert "conv5 unit 4" in text and re.search(r"shape:\w+ \(0\.\d\d\)", text)
