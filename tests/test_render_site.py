"""The renderer on synthetic runs: complete, escaped, valid, incremental, partial runs."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np
import pytest

from atlas.render.build import render_site
from atlas.render.gather import ArtifactError, gather
from synthetic import HOSTILE, SyntheticSpec, write_synthetic_run
from atlas.render.names import safe_name
from atlas.render import writer as writer_mod
from atlas.render.writer import CACHE_NAME, SPARE_PREFIX, SiteWriter
from atlas.artifacts import featvis
from atlas.artifacts.store import RunStore, read_json, write_json
from site_htmlcheck import check_page, check_site

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    run = write_synthetic_run(tmp_path_factory.mktemp("hostile") / "run", SyntheticSpec(hostile=True))
    report = render_site(run, workers=2)
    return run, report


def js_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    m = re.fullmatch(r"window\.(\w+) = (.*);\n", text, re.S)
    assert m, f"{path} is not a single window.NAME = ...; assignment"
    return json.loads(m.group(2))


def test_every_page_is_valid_and_every_link_resolves(hostile_site):
    run, report = hostile_site
    problems, pages = check_site(run / "site")
    assert problems == []
    assert pages == report.pages
    # the checker itself finds what it is meant to find
    bad = run / "bad.html"
    bad.write_text('<!DOCTYPE html><html lang="en"><body><div><p>x</div><img src="/x.png"></body></html>')
    errors, _, _ = check_page(bad)
    assert any("does not close" in e for e in errors) and any("no alt" in e for e in errors) \
        and any("non-relative" in e for e in errors)


def test_site_has_every_kind_of_page(hostile_site):
    run, report = hostile_site
    site = run / "site"
    spec = SyntheticSpec()
    units = sum(shape[0] for _, _, shape in spec.layers)
    assert report.pages == 1 + 2 * len(spec.layers) + units + spec.images + spec.classes + 1  # +layer maps +image map
    for rel in ["index.html", "search.js", "maps/index.html", "maps/data.js", "layers/features.conv5/index.html",
                "layers/features.conv5/data.js", "layers/features.conv5/map.html", "layers/features.conv5/31.html",
                "layers/classifier.fc7/47.html", "images/59.html", "static/atlas.js", "static/grid.js",
                "static/mapview.js", "static/atlas.css", "figures/features.conv5/0.pdf", "figures/features.conv5/1.png"]:
        assert (site / rel).is_file(), rel
    assert not (site / "layers/features.conv5/32.html").exists()
    assert len(list((site / "classes").glob("*.html"))) == spec.classes


def test_user_strings_are_escaped_everywhere(hostile_site):
    run, _ = hostile_site
    site = run / "site"
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for s in HOSTILE:
            if "<" in s or '"' in s:
                assert s not in html, f"{page} contains the raw string {s!r}"
        assert "<script>alert" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert all(re.fullmatch(r'<script src="[^"]+\.js">', s) for s in scripts), scripts
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; #0" in home
    assert "synth &lt;b&gt;set&lt;/b&gt; &amp; co" in home
    for data in site.rglob("*.js"):
        if data.parent.name != "static":
            text = data.read_text(encoding="utf-8")
            assert "<" not in text and "\u2028" not in text, data


def test_layer_data_file(hostile_site):
    run, _ = hostile_site
    d = js_data(run / "site/layers/features.conv5/data.js")
    labels = read_json(run / "stages/evidence/features.conv5/labels.json")
    assert d["units"] == 32 and len(d["max"]) == 32 and len(d["top"]) == 32
    assert d["label"] == [r["label"] or "" for r in labels]
    values = np.load(run / "stages/topk/features.conv5/values.npy")
    assert d["max"] == pytest.approx(values[:, 0].tolist(), rel=1e-3)
    assert [m["id"] for m in d["modes"]] == ["dgn", "pixel", "fourier", "patch", "top", "heat"]
    for m in d["modes"]:
        first = run / "site" / f"{m['base']}{d['top'][0] if m.get('byImage') else 0}{m['ext']}"
        assert first.is_file(), first
    assert {s["id"] for s in d["sorts"]} == {"unit", "max", "sel", "label", "score"}
    # heatmap mode: the top image tiles, with each unit's heat grid over its first top image
    heat_mode = d["modes"][-1]
    assert heat_mode["base"] == d["modes"][-2]["base"] and heat_mode["heat"] == "layers/features.conv5/heat.js"
    grids = js_data(run / "site" / heat_mode["heat"])
    heat = np.load(run / "stages/evidence/features.conv5/heat.npy")
    raw = np.frombuffer(base64.b64decode(grids["b64"]), np.uint8).reshape(32, grids["h"], grids["w"])
    assert np.array_equal(raw, heat[:, 0]) and raw.std() > 0
    layer_page = (run / "site/layers/features.conv5/index.html").read_text(encoding="utf-8")
    assert 'static/heat.js"' in layer_page


def test_unit_page_shows_everything_computed(hostile_site):
    run, _ = hostile_site
    html = (run / "site/layers/features.conv5/1.html").read_text(encoding="utf-8")
    assert 'rel="prev" href="0.html"' in html and 'rel="next" href="2.html"' in html
    assert html.count('class="tile lg sprite"') == 3 * 2     # priors x seeds, tiles of the featvis sheets
    assert html.count('aria-label="patch of image') == 6 and html.count('<canvas class="heat"') == 6
    ids = np.load(run / "stages/topk/features.conv5/ids.npy")[1]
    assert all(f'src="../../img/view/{i}.jpg"' in html for i in ids)   # the model's view, stored once
    assert "<svg" in html and "per-image maximum activation" in html
    assert 'href="../../figures/features.conv5/1.pdf">figure (PDF)</a>' in html
    assert "Neighbouring units" in html and "Nearest units on the unit map" in html
    assert "Not computed" not in html
    image = (run / "site/images/0.html").read_text(encoding="utf-8")
    assert "Nearest neighbours" in image and "Units it excites most" in image
    for layer in ("features.conv5", "classifier.fc7"):
        assert f'../layers/{layer}/' in image


SPRITE = re.compile(r'<span class="tile [a-z ]*sprite"><img src="([^"]+)" alt="([^"]*)"[^>]* '
                    r'style="width:(\d+)%;height:(\d+)%;left:(-?\d+)%;top:(-?\d+)%"')


def sprite_tiles(html: str, page: Path) -> list[tuple[str, np.ndarray]]:
    """Every sprite tile a page shows: (alt, the pixels its css cuts from its sheet)."""
    from PIL import Image
    out = []
    for src, alt, width, height, left, top in SPRITE.findall(html):
        tx, ty, x, y = int(width) // 100, int(height) // 100, -int(left) // 100, -int(top) // 100
        sheet = np.asarray(Image.open((page.parent / src).resolve()).convert("RGB"))
        h, w = sheet.shape[0] // ty, sheet.shape[1] // tx
        assert (h * ty, w * tx) == sheet.shape[:2] and 0 <= x < tx and 0 <= y < ty
        out.append((alt, sheet[y * h:(y + 1) * h, x * w:(x + 1) * w]))
    return out


def test_unit_pages_cut_each_units_pixels_from_the_sheets(tmp_path, monkeypatch):
    """The css of every feature-visualization tile on a unit page (and of the neighbour cards)
    cuts exactly that unit's image of that prior and seed from the featvis sheet: checked
    against the stage's arrays, over several sheets and a --units selection (rows are not units)."""
    monkeypatch.setattr(featvis, "SHEET_UNITS", 5)
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(figure_units=0, featvis_units=12))
    # a --units selection: the featvis rows of fc7 are units 40, 3, 17 (in that order)
    chosen = [40, 3, 17]

    def select(out: Path) -> None:
        for prior in ("dgn", "pixel", "fourier"):
            arr = np.load(out / f"{prior}.npy")[:len(chosen)][::-1].copy()
            featvis.write_prior(out, prior, arr, np.arange(arr.shape[0] * arr.shape[1], dtype=np.float32).reshape(arr.shape[:2]))
        for old in (out / "sheets").iterdir():
            old.unlink()
        featvis.write_meta(out, {**read_json(out / "meta.json"), "units": chosen})
    _rewrite_stage(run, "featvis/classifier.fc7", select)
    render_site(run, workers=1)
    site = run / "site"
    arrays = {(layer, p): np.load(run / f"stages/featvis/{layer}/{p}.npy")
              for layer in ("features.conv5", "classifier.fc7") for p in ("dgn", "pixel", "fourier")}
    for layer, unit, row in [("features.conv5", 0, 0), ("features.conv5", 7, 7), ("features.conv5", 11, 11),
                             ("classifier.fc7", 40, 0), ("classifier.fc7", 3, 1), ("classifier.fc7", 17, 2)]:
        page = site / f"layers/{layer}/{unit}.html"
        tiles = dict(sprite_tiles(page.read_text(encoding="utf-8"), page))
        short = "conv5" if layer == "features.conv5" else "fc7"
        for p in ("dgn", "pixel", "fourier"):
            for seed in range(2):
                assert np.array_equal(tiles[f"{short} unit {unit}, {p} seed {seed}"], arrays[layer, p][row, seed])
    html = (site / "layers/classifier.fc7/5.html").read_text(encoding="utf-8")
    assert "Feature visualizations" not in html                  # unit 5 was not chosen
    assert 'href="../../img/features.conv5/fv0-2.png" data-x="' in (site / "layers/features.conv5/11.html").read_text()


def test_thumbnail_of_a_top_image_is_its_view_when_sizes_agree(hostile_site, tmp_path):
    """A model view no larger than a thumbnail is the thumbnail: the site stores it once (a
    link to the view); other paged images keep the thumbs stage's own file. With bigger views
    (224 px) the thumbnail stays a picture of its own."""
    run, _ = hostile_site
    site = run / "site"
    top = {int(i) for i in np.load(run / "stages/topk/features.conv5/ids.npy").ravel()}
    i = min(top)
    thumb, view = site / f"img/data/{i}.jpg", site / f"img/view/{i}.jpg"
    assert os.path.samefile(thumb, view) or thumb.read_bytes() == view.read_bytes()
    paged = sorted(int(p.stem) for p in (site / "img/data").glob("*.jpg"))
    others = [j for j in paged if not (site / f"img/view/{j}.jpg").exists()]
    for j in others[:3]:
        assert (site / f"img/data/{j}.jpg").read_bytes() == (run / f"stages/thumbs/img/{j}.jpg").read_bytes()
    big = write_synthetic_run(tmp_path / "big", SyntheticSpec(images=20, view=64))
    render_site(big, workers=1)
    j = int(np.load(big / "stages/topk/features.conv5/ids.npy")[0, 0])
    t, v = big / f"site/img/data/{j}.jpg", big / f"site/img/view/{j}.jpg"
    assert not os.path.samefile(t, v) and t.read_bytes() != v.read_bytes()


def test_image_page_magnifies_a_small_picture_pixel_for_pixel(hostile_site, tmp_path):
    """A 32-px model view is drawn 256 px wide (a whole factor, pixelated) and says so; a
    view of 256 px or more is drawn at its own size."""
    run, _ = hostile_site
    i = int(np.load(run / "stages/topk/features.conv5/ids.npy")[0, 0])
    html = (run / f"site/images/{i}.html").read_text(encoding="utf-8")
    assert f'<img class="big px" src="../img/view/{i}.jpg" width="256" height="256"' in html
    assert "32×32 px (jpeg), magnified 8×" in html
    big = write_synthetic_run(tmp_path / "big", SyntheticSpec(images=20, view=256))
    render_site(big, workers=1)
    j = int(np.load(big / "stages/topk/features.conv5/ids.npy")[0, 0])
    html = (big / f"site/images/{j}.html").read_text(encoding="utf-8")
    assert f'<img class="big" src="../img/view/{j}.jpg" width="256" height="256"' in html and "magnified" not in html


def test_image_page_lists_only_layers_with_units(tmp_path):
    """An image page names a layer only when some unit of it keeps the image among its top
    images, and says so when none does (images paged for the map only)."""
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(images=400, k=2))
    render_site(run, workers=1)
    ids = {layer: np.load(run / f"stages/topk/{layer}/ids.npy") for layer in ("features.conv5", "classifier.fc7")}
    seen = {"none": 0, "one": 0}
    for p in sorted((run / "site/images").glob("*.html")):
        i, html = int(p.stem), p.read_text(encoding="utf-8")
        has = {layer: bool((top == i).any()) for layer, top in ids.items()}
        for layer, yes in has.items():
            assert (f'<h3><a href="../layers/{layer}/index.html">' in html) == yes
        assert ("No unit keeps this image among its top images." in html) == (not any(has.values()))
        seen["none" if not any(has.values()) else "one" if not all(has.values()) else "both"] = 1
    assert seen["none"] and seen["one"]          # both cases were looked at


def test_image_pages_link_back_to_units(hostile_site):
    """Unit pages link to their top images; those images' pages link back to the unit."""
    run, _ = hostile_site
    ids = np.load(run / "stages/topk/features.conv5/ids.npy")
    for unit in (0, 5, 17):
        image = (run / f"site/images/{ids[unit, 0]}.html").read_text(encoding="utf-8")
        assert f'href="../layers/features.conv5/{unit}.html"' in image


def test_second_render_changes_nothing(hostile_site, tmp_path):
    run, first = hostile_site
    before = {p: p.stat().st_mtime_ns for p in (run / "site").rglob("*") if p.is_file() and p.name != CACHE_NAME}
    again = render_site(run, workers=1)
    produced = {k: v["written"] + v["same"] for k, v in again.counts.items()}
    assert produced == {k: 0 for k in produced}
    after = {p: p.stat().st_mtime_ns for p in (run / "site").rglob("*") if p.is_file() and p.name != CACHE_NAME}
    assert before == after


def _rewrite_stage(run: Path, name: str, change) -> None:
    """A new version of a finished stage (real manifest), with `change(out_dir)` applied."""
    store = RunStore(run)
    old = store.stage_dir(name)
    man = store.manifest(name)
    with store.writing(name, man["key"] + "x", {"version": 1, "params": {}, "deps": []}) as out:
        for f in old.iterdir():
            if f.is_dir():
                shutil.copytree(f, Path(out) / f.name)
            elif f.name != "manifest.json":
                (Path(out) / f.name).write_bytes(f.read_bytes())
        change(Path(out))


def test_incremental_render_redoes_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(featvis, "SHEET_UNITS", 8)   # conv5's 32 units in 4 featvis sheets
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(figure_units=0))
    render_site(run, workers=1)
    site = run / "site"
    strip = site / "img/features.conv5/fv0-0.png"    # the sheet of units 0-7
    other = site / "img/features.conv5/fv0-1.png"
    page7, page3 = site / "layers/features.conv5/7.html", site / "layers/features.conv5/3.html"
    mtimes = (strip.stat().st_mtime_ns, other.stat().st_mtime_ns, page3.stat().st_mtime_ns)

    def repaint_unit_3(out: Path) -> None:
        arr = np.load(out / "pixel.npy")
        arr[3] = 255 - arr[3]
        np.save(out / "pixel.npy", arr)
        featvis.write_meta(out, read_json(out / "meta.json"))   # the stage's writer encodes the sheets again

    _rewrite_stage(run, "featvis/features.conv5", repaint_unit_3)
    report = render_site(run, workers=1)
    assert report.counts["linked"]["written"] == 1          # only unit 3's sheet changed: linked again
    assert report.counts.get("image", {}).get("written", 0) == 0   # the renderer encodes no image at all
    assert strip.stat().st_mtime_ns != mtimes[0] and other.stat().st_mtime_ns == mtimes[1]
    stored = run / "stages/featvis/features.conv5/sheets/fv0-0.png"
    assert os.path.samefile(strip, stored) and not strip.is_symlink()   # the stage's file, not a new encoding
    assert page3.stat().st_mtime_ns == mtimes[2]              # no page shows those pixels' values...
    assert report.counts["page"]["written"] == 1             # ...but the home page lists the new stage run

    def relabel_unit_7(out: Path) -> None:
        labels = read_json(out / "labels.json")
        labels[7] = {"unit": 7, "label": "texture:new-label", "score": 0.3, "method": "iou"}
        write_json(out / "labels.json", labels)

    _rewrite_stage(run, "evidence/features.conv5", relabel_unit_7)
    report = render_site(run, workers=1)
    assert "texture:new-label" in page7.read_text(encoding="utf-8")
    assert all(report.counts[k]["written"] == 0 for k in ("image", "linked") if k in report.counts)
    assert 1 <= report.counts["page"]["written"] < 40        # the unit's page and pages that show its label
    assert "texture:new-label" in (site / "search.js").read_text(encoding="utf-8")

    # a stage that disappears takes its files with it
    import shutil
    shutil.rmtree(run / "stages/maps")
    report = render_site(run, workers=1)
    assert report.removed > 0 and not (site / "maps/index.html").exists()
    assert not (site / "layers/features.conv5/map.html").exists()
    assert check_site(site)[0] == []


def test_dataset_and_topk_alone_still_render(tmp_path):
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(stages=("dataset", "topk")))
    report = render_site(run, workers=1)
    site = run / "site"
    assert report.pages == 1 + 2 + 32 + 48 + 60 + 5
    assert check_site(site)[0] == []
    assert not (site / "maps").exists() and not (site / "img/features.conv5").exists()
    html = (site / "layers/features.conv5/0.html").read_text(encoding="utf-8")
    assert "Not computed in this run for conv5: feature visualizations; patches, heatmaps, histograms" in html
    assert "Units that share the most top images" in html
    d = js_data(site / "layers/features.conv5/data.js")
    assert [m["id"] for m in d["modes"]] == ["top"] and d["label"] is None


def test_a_broken_artifact_is_an_error_naming_the_file(tmp_path):
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(stages=("dataset", "topk", "featvis")))

    def break_dgn(out: Path) -> None:
        np.save(out / "dgn.npy", np.zeros((4, 2, 8, 8, 3), np.float32))

    _rewrite_stage(run, "featvis/features.conv5", break_dgn)
    with pytest.raises(ArtifactError, match=r"featvis/features\.conv5/dgn\.npy: expected uint8"):
        gather(run)


def test_missing_required_stage_is_reported(tmp_path):
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(stages=("dataset",)))
    with pytest.raises(FileNotFoundError, match="no finished topk stage"):
        gather(run)


def test_site_writer_refuses_escapes_and_repeats(tmp_path):
    """Safe names stay one plain ASCII path part; the writer refuses paths that leave the
    site folder (also through a symbolic link) and a second write of the same path."""
    for text in ("../../x", "..", ".", "a/b", "<b>", "日本語", "", "x" * 300, "CON", "a\x00b"):
        name = safe_name(text)
        assert name and "/" not in name and not name.startswith(".") and len(name) <= 80, (text, name)
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name), name
    assert safe_name("../../x") != safe_name("x") and safe_name("a b") != safe_name("a_b")
    w = SiteWriter(tmp_path / "site")
    w.write("a/b.html", "x")
    with pytest.raises(ValueError, match="written twice"):
        w.write("a/b.html", "y")
    for bad in ("../x.html", "a/../../x", "/etc/passwd", "a//b", "a\\b", "./x", "../../x"):
        with pytest.raises(ValueError, match="outside the site folder"):
            w.claim(bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "site" / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the site folder"):
        w.write("link/x.html", "x")
    assert not (outside / "x.html").exists()
    mtime = (tmp_path / "site/a/b.html").stat().st_mtime_ns
    assert w.put("a/b.html", "x") is False and (tmp_path / "site/a/b.html").stat().st_mtime_ns == mtime


def test_replacing_pages_reuses_inodes_and_never_changes_other_links(tmp_path):
    """A changed page is replaced whole (exchanged with a spare holding the new bytes); the
    old page's inode is written over for the next page, unless another name links to it (a
    stage file linked into the site, a user's `cp -al` copy): those bytes never change."""
    site = tmp_path / "site"
    w = SiteWriter(site)
    stage_file = tmp_path / "stage.png"
    stage_file.write_bytes(b"stage bytes")
    w.link("pic.png", stage_file)
    for name in ("a", "b", "c", "d"):
        w.put(f"u/{name}.html", f"old {name} " * 50)
    backup = tmp_path / "backup-a.html"
    os.link(site / "u/a.html", backup)                      # a hard-linked copy of page a
    (site / "u/d.html").chmod(0o600)                       # a page a user made private
    w.put("u/e.html", "old e")
    (site / "u/e.html").unlink()
    (site / "u/e.html").symlink_to(tmp_path / "elsewhere.html")  # a page a user made a link
    (tmp_path / "elsewhere.html").write_text("not the site's")
    old_inodes = {n: (site / f"u/{n}.html").stat().st_ino for n in "abcd"}

    assert w.put("pic.png", b"a page where the stage file was") is True
    assert w.put("u/a.html", "new a") is True
    assert w.put("u/b.html", "new b") is True
    assert w.put("u/d.html", "new d " * 80) is True
    assert w.put("u/e.html", "new e") is True
    assert w.put("u/c.html", "new c") is True
    assert w.put("u/c.html", "new c") is False              # same bytes: left alone
    w.finish()

    assert stage_file.read_bytes() == b"stage bytes"
    assert backup.read_text() == "old a " * 50
    assert (site / "pic.png").read_bytes() == b"a page where the stage file was"
    assert (tmp_path / "elsewhere.html").read_text() == "not the site's"
    assert not (site / "u/e.html").is_symlink() and (site / "u/e.html").read_text() == "new e"
    want = {"a": "new a", "b": "new b", "c": "new c", "d": "new d " * 80}
    mode = 0o666 & ~_umask()
    for n, text in want.items():
        p = site / f"u/{n}.html"
        assert p.read_text() == text and p.stat().st_nlink == 1, n
        assert p.stat().st_mode & 0o777 == mode, (n, oct(p.stat().st_mode))
    assert not [f for f in os.listdir(site) if f.startswith(SPARE_PREFIX)]
    if writer_mod._RENAMEAT2 is None:
        pytest.skip("this system cannot exchange files; pages were replaced by rename")
    # b's old inode became d's: written over, not freed (a's, linked elsewhere, and d's, with
    # other permissions, were let go: the checks above show their bytes and modes)
    assert (site / "u/d.html").stat().st_ino == old_inodes["b"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_renderer_never_imports_torch(tmp_path):
    code = ("import sys; import atlas.render.build as b; from tests.synthetic import *; "
            f"r = write_synthetic_run({str(tmp_path / 'run')!r}, SyntheticSpec(images=12, layers=[('a', None, (4,))])); "
            "b.render_site(r, workers=1); from atlas.render import serve; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_render_command_prints_index(tmp_path):
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(images=12, layers=[("a", None, (4,))]))
    out = subprocess.run([sys.executable, "-m", "atlas", "render", str(run)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str((run / "site" / "index.html").resolve())
