"""The built site in headless Chromium, from file://: clean loads, navigation, search,
sorting, filtering, the windowed grid, keyboard use and the maps.

Sites: the quick demo atlas (a real run) and a synthetic one with every artifact,
hostile strings and a 2048-unit layer. Every page opened must log no console error,
raise no page error, fail no request, and request nothing but file:// URLs.
Set ATLAS_SCREENSHOTS=DIR to keep a screenshot of each page type.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

from atlas.render.build import render_site
from synthetic import SyntheticSpec, write_synthetic_run

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (.ci/run installs it)")]
playwright_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")


@pytest.fixture(scope="session")
def demo_site(quick_demo) -> Path:
    """The site of the session's quick demo (conftest.quick_demo)."""
    return quick_demo / "site"


@pytest.fixture(scope="session")
def synth_site(tmp_path_factory) -> Path:
    spec = SyntheticSpec(hostile=True, featvis_units=64, layers=[
        ("features.conv5", "conv5", (32, 8, 8)), ("classifier.fc6", "fc6", (2048,)), ("classifier.fc7", "fc7", (48,))])
    run = write_synthetic_run(tmp_path_factory.mktemp("synth") / "run", spec)
    render_site(run)
    return run / "site"


@pytest.fixture(scope="session")
def browser(chromium):
    return chromium   # conftest.chromium: one browser for every browser test of the session


@contextmanager
def page_of(browser):
    """A fresh page; on exit, fails the test on any console error, page error, failed
    request or request that is not file://."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    # ERR_ABORTED is a load cut short by leaving the page (tests navigate fast); a missing
    # file is ERR_FILE_NOT_FOUND and is reported
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})")
            if "ERR_ABORTED" not in (r.failure or "") else None)
    page.on("request", lambda r: requests.append(r.url))
    try:
        yield page
        page.wait_for_timeout(150)
    finally:
        ctx.close()
    leaving = [u for u in requests if not u.startswith("file://")]
    assert leaving == [], f"requests that leave the machine: {leaving[:5]}"
    assert problems == [], "\n".join(problems[:10])
    page_of.requests = requests


def url(site: Path, rel: str) -> str:
    return (site / rel).as_uri()


def shoot(page, name: str) -> None:
    folder = os.environ.get("ATLAS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


PAGES = {
    "index": "index.html", "layer": "layers/features.conv5/index.html", "unit": "layers/features.conv5/4.html",
    "image": "images/5.html", "class": "classes/0-circle.html",
}


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_demo_pages_load_cleanly(browser, demo_site, kind):
    with page_of(browser) as page:
        page.goto(url(demo_site, PAGES[kind]))
        page.wait_for_load_state("load")
        assert page.locator("h1").count() == 1
        shoot(page, f"demo-{kind}")


@pytest.mark.parametrize("rel", ["index.html", "layers/features.conv5/index.html", "layers/classifier.fc6/index.html",
                                 "layers/features.conv5/1.html", "layers/classifier.fc6/2047.html",
                                 "layers/classifier.fc7/map.html", "maps/index.html", "images/0.html", "class"])
def test_synthetic_pages_load_cleanly(browser, synth_site, rel):
    if rel == "class":  # its file name comes from a hostile class name
        rel = next(p.relative_to(synth_site).as_posix() for p in (synth_site / "classes").glob("0-*.html"))
    with page_of(browser) as page:
        page.goto(url(synth_site, rel))
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # lazy thumbnails and map sheets load
        # hostile strings stayed text: no inline script, no event-handler attribute, no <b>/<i> from data
        assert page.evaluate("document.querySelectorAll('script:not([src]), [onerror], main b b, h1 i').length") == 0
        shoot(page, "synth-" + re.sub(r"[^a-z0-9]+", "-", rel.lower()))


def cell_order(page) -> list[int]:
    cells = page.eval_on_selector_all(".vgrid .cell", "els => els.map(e => [+e.dataset.pos, +e.dataset.unit])")
    return [u for _, u in sorted(cells)]


def test_navigation_index_layer_unit_map_image(browser, synth_site):
    with page_of(browser) as page:
        page.goto(url(synth_site, "index.html"))
        page.click("table.layers a:text-is('conv5')")
        page.wait_for_url(re.compile(r"layers/features\.conv5/index\.html"))
        page.click(".vgrid .cell[data-unit='3']")
        page.wait_for_url(re.compile(r"layers/features\.conv5/3\.html$"))
        assert page.locator("h1").inner_text().startswith("conv5 unit 3")
        page.click("a:text-is('on the unit map')")
        page.wait_for_url(re.compile(r"layers/features\.conv5/map\.html#unit=3$"))
        page.wait_for_timeout(300)
        box = page.locator("#mapcanvas").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)   # the marked unit is centred
        page.wait_for_url(re.compile(r"layers/features\.conv5/\d+\.html$"))
        page.click(".tops figure a >> nth=0")                                          # its top image
        page.wait_for_url(re.compile(r"images/\d+\.html$"))
        page.click("a:text-is('on the image map')")
        page.wait_for_url(re.compile(r"maps/index\.html#image=\d+$"))
        page.wait_for_timeout(300)
        box = page.locator("#mapcanvas").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_url(re.compile(r"images/\d+\.html$"))
        page.click(".cards a.ucard >> nth=0")                                          # a unit it excites
        page.wait_for_url(re.compile(r"layers/[^/]+/\d+\.html$"))


def test_search_finds_units_labels_and_classes(browser, demo_site, synth_site):
    with page_of(browser) as page:
        page.goto(url(demo_site, "index.html"))
        page.fill("#q", "conv5:3")
        page.wait_for_selector("#results li a")
        assert page.locator("#results li.active .what").inner_text() == "conv5:3"
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"layers/features\.conv5/3\.html$"))
        page.press("body", "/")
        page.keyboard.type("fc7 12")
        page.wait_for_selector("#results li a")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"layers/classifier\.fc7/12\.html$"))
        page.fill("#q", "circle")
        page.wait_for_selector("#results li a")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"classes/0-circle\.html$"))
        assert "circle" in page.locator("h1").inner_text()
    with page_of(browser) as page:
        page.goto(url(synth_site, "images/3.html"))
        page.fill("#q", "shape:star")
        page.wait_for_selector("#results li a")
        assert page.locator("#results li.active .kind").text_content() == "label"
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"layers/[^/]+/\d+\.html$"))
        assert "shape:star" in page.locator("h1").inner_text()
        page.fill("#q", "<script>")                      # hostile label text is found and shown as text
        page.wait_for_selector("#results li a")
        assert "<script>" in page.locator("#results li .what >> nth=0").inner_text()


def test_sorting_and_filtering_change_the_grid(browser, demo_site):
    with page_of(browser) as page:
        page.goto(url(demo_site, "layers/features.conv5/index.html"))
        page.wait_for_selector(".vgrid .cell")
        assert cell_order(page)[:10] == list(range(10))
        maxima = page.evaluate("window.ATLAS_LAYER.max")
        page.select_option("#sort", "max")
        page.wait_for_timeout(100)
        by_max = cell_order(page)
        assert by_max != list(range(len(by_max)))
        assert by_max == sorted(range(len(maxima)), key=lambda u: (-maxima[u], u))[:len(by_max)]
        page.click("#dir")
        page.wait_for_timeout(100)
        assert cell_order(page) == sorted(range(len(maxima)), key=lambda u: (maxima[u], u))[:len(by_max)]
        assert "sort=max" in page.url and "dir=asc" in page.url
        page.fill("#filter", "circle")
        page.wait_for_timeout(100)
        shown = cell_order(page)
        classes = page.evaluate("window.ATLAS_LAYER.cls.map(c => window.ATLAS_LAYER.classNames[c] || '')")
        labels = page.evaluate("window.ATLAS_LAYER.label || []") or [""] * len(maxima)
        assert 0 < len(shown) < len(maxima)
        assert all("circle" in labels[u].lower() or classes[u] == "circle" for u in shown)
        assert re.fullmatch(rf"{len(shown)} of {len(maxima)} units( · .*)?", page.inner_text("#count"))
        page.reload()                                    # the state lives in the URL
        page.wait_for_selector(".vgrid .cell")
        assert cell_order(page) == shown and page.input_value("#filter") == "circle"


def test_grid_is_windowed_at_2048_units(browser, synth_site):
    with page_of(browser) as page:
        page.goto(url(synth_site, "layers/classifier.fc6/index.html"))
        page.wait_for_selector(".vgrid .cell")
        page.wait_for_timeout(300)
        assert page.locator(".vgrid .cell").count() < 200
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(300)
        units = set(cell_order(page))
        assert 2047 in units and 0 not in units and len(units) < 200
        page.select_option("#mode", "top")
        page.wait_for_timeout(300)
        assert page.locator(".vgrid canvas.heat").count() == 0
        page.select_option("#mode", "heat")               # heat grids drawn over the same tiles
        page.wait_for_function("document.querySelectorAll('.vgrid canvas.heat').length > 0")
        assert page.locator(".vgrid canvas.heat").count() == page.locator(".vgrid .cell").count()
        drawn = page.evaluate("""() => { const cv = document.querySelector('.vgrid canvas.heat');
            const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
            let a = 0; for (let i = 3; i < d.length; i += 4) a += d[i]; return [cv.width, a]; }""")
        assert drawn[0] >= 16 and drawn[1] > 0             # a painted canvas, not an empty one
    fc6_images = [u for u in page_of.requests if "/img/classifier.fc6/" in u or "/img/data/" in u]
    assert 0 < len(fc6_images) < 400, len(fc6_images)


def test_keyboard_moves_between_units(browser, synth_site):
    with page_of(browser) as page:
        page.goto(url(synth_site, "layers/features.conv5/5.html"))
        page.keyboard.press("ArrowRight")
        page.wait_for_url(re.compile(r"/6\.html$"))
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(re.compile(r"/5\.html$"))
        page.keyboard.press("u")
        page.wait_for_url(re.compile(r"features\.conv5/index\.html"))
        page.wait_for_selector(".vgrid .cell")
        page.focus(".vgrid .cell[data-pos='0']")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.dataset.pos") == "1"
        page.keyboard.press("ArrowDown")
        cols = page.evaluate("document.activeElement.dataset.pos")
        assert int(cols) > 2
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf"features\.conv5/{int(cols)}\.html$"))


def test_site_works_from_a_sub_path_of_a_static_host(browser, demo_site):
    """Served over HTTP under /run/site/ (as on a host's sub-path): pages, search and
    navigation work and every request stays under that prefix."""
    import threading

    from atlas.render.serve import make_server
    server = make_server(demo_site.parent.parent, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/{demo_site.parent.name}/site/"
    try:
        ctx = browser.new_context()
        page = ctx.new_page()
        requests, problems = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: problems.append(f"failed {r.url}")
                if "ERR_ABORTED" not in (r.failure or "") else None)
        page.goto(base + "layers/features.conv5/index.html")
        page.wait_for_selector(".vgrid .cell")
        page.click(".vgrid .cell[data-unit='2']")
        page.wait_for_url(base + "layers/features.conv5/2.html")
        page.fill("#q", "fc6:7")
        page.wait_for_selector("#results li a")
        page.keyboard.press("Enter")
        page.wait_for_url(base + "layers/classifier.fc6/7.html")
        page.click("a.brand")
        page.wait_for_url(base + "index.html")
        ctx.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert problems == []
    assert requests and all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]


def screen_pixels(page, selector: str, side: int) -> "np.ndarray":
    """The pixels Chromium drew in the element (a square of css px), sampled at the centres
    of a side x side grid: the source pixels of a picture drawn magnified, pixelated."""
    import io

    import numpy as np
    from PIL import Image
    el = page.locator(selector).first
    box = el.bounding_box()   # the shot covers the whole pixels the box touches
    shot = np.asarray(Image.open(io.BytesIO(el.screenshot())).convert("RGB"))
    ys = (box["y"] - np.floor(box["y"]) + (np.arange(side) + 0.5) * box["height"] / side).astype(int)
    xs = (box["x"] - np.floor(box["x"]) + (np.arange(side) + 0.5) * box["width"] / side).astype(int)
    return shot[ys][:, xs]


def test_sprite_sheets_show_each_units_own_pixels(browser, synth_site):
    """Feature visualizations come from the featvis stage's sprite sheets: on a unit page and in
    the layer grid, Chromium draws exactly the unit's image of that prior and seed (pixel for
    pixel at the centres of the magnified pixels), and the grid loads a few sheets, not a
    file per unit."""
    import numpy as np
    run = synth_site.parent
    dgn = np.load(run / "stages/featvis/features.conv5/dgn.npy")
    fourier = np.load(run / "stages/featvis/classifier.fc6/fourier.npy")
    side = dgn.shape[2]
    inner = slice(2, side - 2)   # rounded corners aside
    with page_of(browser) as page:
        page.goto(url(synth_site, "layers/features.conv5/3.html"))
        page.wait_for_load_state("load")
        for j, seed in ((0, 0), (1, 1)):
            got = screen_pixels(page, f"img[alt='conv5 unit 3, dgn seed {seed}'] >> xpath=..", side)
            assert np.abs(got[inner, inner].astype(int) - dgn[3, seed][inner, inner]).max() <= 2, (j, seed)
        page.goto(url(synth_site, "layers/classifier.fc6/63.html"))   # the last visualized unit of fc6
        page.wait_for_load_state("load")
        got = screen_pixels(page, "img[alt='fc6 unit 63, fourier seed 1'] >> xpath=..", side)
        assert np.abs(got[inner, inner].astype(int) - fourier[63, 1][inner, inner]).max() <= 2
        page.goto(url(synth_site, "layers/features.conv5/index.html"))
        page.wait_for_selector(".vgrid .cell[data-unit='5'] .thumb")
        page.wait_for_timeout(300)
        got = screen_pixels(page, ".vgrid .cell[data-unit='5'] .thumb", side)   # default mode: DGN-AM seed 0
        assert np.abs(got[inner, inner].astype(int) - dgn[5, 0][inner, inner]).max() <= 2
    sheets = {u for u in page_of.requests if "/img/features.conv5/fv" in u}
    assert 1 <= len(sheets) <= 2, sheets       # 32 units' strips in one sheet (a second from the unit pages' cards)
    assert not any(re.search(r"/fv\d+/\d+\.png$", u) for u in page_of.requests)   # no per-unit strip files


def test_unit_page_saves_the_units_pictures_over_http(browser, synth_site, tmp_path):
    """Served over HTTP, the unit page's "lossless" link saves the unit's strip cut from the
    sheet: a PNG equal, pixel for pixel, to the unit's images of every prior and seed."""
    import threading

    import numpy as np
    from PIL import Image

    from atlas.render.serve import make_server
    run = synth_site.parent
    server = make_server(run.parent, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/{run.name}/site/"
    try:
        ctx = browser.new_context(accept_downloads=True)
        page = ctx.new_page()
        page.goto(base + "layers/features.conv5/6.html")
        with page.expect_download() as info:
            page.click("a.fvsave")
        saved = tmp_path / "unit6.png"
        info.value.save_as(saved)
        assert info.value.suggested_filename == "conv5-unit6-fv0.png"
        ctx.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    got = np.asarray(Image.open(saved).convert("RGB"))
    tiles = [np.load(run / f"stages/featvis/features.conv5/{p}.npy")[6, s] for p in ("dgn", "pixel", "fourier")
             for s in range(2)]
    assert np.array_equal(got, np.concatenate(tiles, axis=1))
