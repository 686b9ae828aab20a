"""Evidence at the model's resolution, on real photos (shorter side 320 px, 224-px input):
stored views are the model's view, not magnified thumbnails; a patch is, pixel for pixel
within the codec's error, the crop of the model-resolution image at the recorded box; the
site links the stage's encoded files instead of encoding them again."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.artifacts import Run
from atlas.config import Config
from atlas.context import Context
from atlas.data.loader import display_transform
from atlas.evidence.codec import decode, resize
from atlas.evidence.patches import crop_patch
from atlas.artifacts.pictures import load
from atlas.render.build import render_site
from atlas.stages import concepts, dataset, dissect, evidence, topk
from atlas.stages.dataset import thumb_size
from atlas.pipeline import run_stages
from atlas.artifacts.store import RunStore, read_json

PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "photos"
pytestmark = pytest.mark.skipif(not PHOTOS.is_dir(), reason="needs ../shared/data/photos")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255 ** 2 / mse) if mse > 0 else float("inf")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("photo-run")
    cfg = Config(model="alexnet", weights="random", data=str(PHOTOS), data_limit=16, topk=3,
                 layers=["conv5", "fc8"], out=str(root), maps=False, workers=0, batch_size=8, device="cpu", fc_heatmaps="none")
    ctx = Context(cfg, RunStore(root))
    run_stages(ctx, (dataset.make, topk.make, concepts.make, dissect.make, evidence.make))
    return ctx


def model_view(ctx, image_id: int) -> np.ndarray:
    """The model's view of an image, decoded here independently of the stages."""
    with Image.open(PHOTOS / Run(ctx.store.root).dataset.desc(image_id)) as im:
        x = display_transform(ctx.spec)(im.convert("RGB"))
    return x.permute(1, 2, 0).numpy()


def test_views_are_the_model_view_not_a_thumbnail(run):
    t = thumb_size(run)
    assert t < 224
    folder = run.store.stage_dir("evidence/features.10")
    pics = load(folder)
    assert pics.geometry.display_size == 224 and pics.geometry.input_size == 224
    ids = np.load(run.store.stage_dir("topk") / "features.10" / "ids.npy")
    for i in np.unique(ids)[:6]:
        view = pics.view(int(i))
        assert view.shape == (224, 224, 3)
        truth = model_view(run, int(i))
        thumb = resize(truth, t)   # the data-set thumbnail of the same view
        upscaled = np.asarray(Image.fromarray(thumb).resize((224, 224), Image.BICUBIC))
        assert psnr(view, truth) > 30                       # only the codec's error
        # far sharper than a magnified thumbnail (area-averaged, as the thumbs stage makes it)
        assert psnr(view, truth) > psnr(upscaled, truth) + 5


def test_patch_is_the_crop_at_the_recorded_box(run):
    folder = run.store.stage_dir("evidence/features.10")
    meta = read_json(folder / "meta.json")
    pics = load(folder)
    window = tuple(meta["patch_window"])
    assert meta["patch_size"] == max(window) >= 128   # conv5: its field's own resolution, no resampling
    ids = np.load(run.store.stage_dir("topk") / "features.10" / "ids.npy")
    boxes = np.load(folder / "boxes.npy")
    for u in (0, 5, 100):
        for r in range(ids.shape[1]):
            got = pics.patch(u, r)
            want = crop_patch(model_view(run, int(ids[u, r])), boxes[u, r], window, meta["patch_size"])
            assert got.shape == want.shape == (meta["patch_size"],) * 2 + (3,)
            assert psnr(got, want) > 30, (u, r)
            assert np.abs(got.astype(int) - want.astype(int)).mean() < 6   # JPEG q80 on detailed photos: 2-5 levels


def test_heat_grids_and_sheets(run):
    conv = load(run.store.stage_dir("evidence/features.10"))
    assert conv.heat.shape == (256, 3, 13, 13) and conv.heat.dtype == np.uint8
    assert (conv.heat.reshape(256, -1).max(1)[conv.heat.reshape(256, -1).max(1) > 0] == 255).all()  # per unit
    fc = load(run.store.stage_dir("evidence/classifier.6"))
    assert fc.meta["patches"] == "view" and fc.meta["sheets"] == ["top"]   # fc8's field is the whole image
    assert fc.heat is None and fc.meta["heatmap"] == "none"   # fc_heatmaps = none (Grad-CAM costs minutes here)
    sheets = conv.sheet_paths("patch")
    assert len(sheets) == 1
    strip = decode(sheets[0].read_bytes())
    assert strip.shape == (112, 256 * 112, 3)


def test_site_links_the_stage_files(run):
    report = render_site(run.store.root)
    site = report.out
    folder = run.store.stage_dir("evidence/features.10")
    ids = np.load(run.store.stage_dir("topk") / "features.10" / "ids.npy")
    i = int(ids[0, 0])
    page = (site / "layers" / "features.10" / "0.html").read_text()
    assert f"../../img/view/{i}.jpg" in page and "canvas class=\"heat\"" in page
    linked, stored = site / "img" / "view" / f"{i}.jpg", folder / "views" / f"{i}.jpg"
    assert linked.read_bytes() == stored.read_bytes() and not linked.is_symlink()
    assert os.stat(linked).st_ino == os.stat(stored).st_ino   # a hard link on one file system
    assert (site / "img" / "features.10" / "patch-0.jpg").is_file()
    with Image.open(linked) as im:
        assert im.size == (224, 224)
    image_page = (site / "images" / f"{i}.html").read_text()
    assert f"../img/view/{i}.jpg" in image_page and "the model&#39;s view, 224×224 px" in image_page


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is absent")
def test_heat_canvas_draws_the_overlay(tmp_path, chromium):
    """site/heat.js draws a stored heat grid as heatmaps.overlay colours it: compositing its
    canvas (colour C, alpha 1 - m) over an image gives overlay(image, bilinear(grid))."""
    import torch

    from atlas.evidence.heatmaps import overlay, upsample
    from synthetic import SyntheticSpec, write_synthetic_run
    run = write_synthetic_run(tmp_path / "run", SyntheticSpec(stages=("dataset", "topk", "evidence")))
    render_site(run, workers=1)
    grid = load(run / "stages" / "evidence" / "features.conv5").heat[3, 0]
    ctx = chromium.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    page = ctx.new_page()
    page.goto((run / "site" / "layers" / "features.conv5" / "3.html").as_uri())
    page.wait_for_function("document.querySelector('canvas.heat').width > 0")
    size, rgba = page.evaluate("""() => { const c = document.querySelector('canvas.heat');
        return [c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""")
    ctx.close()
    rgba = np.asarray(rgba, np.float64).reshape(size, size, 4) / 255
    heat = upsample(torch.from_numpy(grid.astype(np.float32) / 255), size).clamp(0, 1).numpy()
    for gray in (0, 128, 255):   # any image under the canvas
        img = np.full((size, size, 3), gray, np.uint8)
        want = overlay(img, heat).astype(np.float64)
        got = img * (1 - rgba[..., 3:]) + 255 * rgba[..., :3] * rgba[..., 3:]
        assert np.abs(got - want).max() < 4, gray
