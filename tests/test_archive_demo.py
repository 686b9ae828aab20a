"""End to end on the real quick demo: per-unit figures, archive, verify, and the unpacked
site opened from disk (links checked on every page; one browser load where Chromium is)."""
from __future__ import annotations

import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from atlas.cli import main
from atlas.artifacts.store import read_json

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(quick_demo) -> Path:
    """The session's quick demo (conftest.quick_demo), built once for all the tests that use it."""
    return quick_demo


def test_figure_stage_on_demo(demo, capsys):
    layers = read_json(demo / "stages/topk/layers.json")
    limit = read_json(demo / "config.json")["units_limit"]
    for layer in layers:
        folder = demo / "stages/figures" / layer["name"]
        meta = read_json(folder / "meta.json")
        assert meta["units"] == list(range(min(limit, layer["units"])))
        for u in meta["units"]:
            assert (folder / f"{u}.pdf").read_bytes()[:5] == b"%PDF-"
            assert (folder / f"{u}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not (folder / f"{limit}.pdf").exists()
    capsys.readouterr()
    assert main(["demo", "--quick", "--out", str(demo), "--device", "cpu"]) == 0
    rerun = capsys.readouterr().out
    assert "[figures/classifier.fc8] up to date, skipped" in rerun and "0 stages computed" in rerun


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def test_archive_unpacks_into_a_site_that_works_from_disk(demo, tmp_path, capsys):
    archive = tmp_path / "demo.zip"
    assert main(["archive", str(demo), "--out", str(archive)]) == 0
    assert main(["verify", str(archive)]) == 0
    assert capsys.readouterr().out.count("OK:") == 1
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    pages = sorted((folder / "site").rglob("*.html"))
    assert len(pages) > 100
    checked = 0
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for link in parser.links:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc and not link.startswith("/"), (page, link)
            if not parts.path:
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert folder.resolve() in target.parents and target.is_file(), (page, link)
            checked += 1
    assert checked > 1000
    assert main(["verify", str(folder)]) == 0


@pytest.mark.browser
def test_unpacked_site_opens_in_chromium(demo, tmp_path, chromium):
    archive = tmp_path / "demo.tar.gz"
    assert main(["archive", str(demo), "--out", str(archive)]) == 0
    import tarfile
    folder = tmp_path / "unpacked"
    with tarfile.open(archive) as tf:
        tf.extractall(folder, filter="data")
    failed: list[str] = []
    ctx = chromium.new_context()
    page = ctx.new_page()
    # ERR_ABORTED is a load cut short by navigating on (the favicon of a page left at
    # once); a missing file is ERR_FILE_NOT_FOUND and fails the test
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}")
            if "ERR_ABORTED" not in (r.failure or "") else None)
    page.goto((folder / "site" / "index.html").as_uri())
    assert "atlas demo" in page.title()
    page.click("header.top nav >> text=conv5")
    page.wait_for_load_state("load")
    assert page.url.endswith("/site/layers/features.conv5/index.html")
    page.goto((folder / "site" / "layers" / "features.conv5" / "3.html").as_uri())
    assert re.search(r"conv5 unit 3", page.content())
    images = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
    ctx.close()
    assert images and all(w > 0 for w in images), images
    assert not failed, failed
