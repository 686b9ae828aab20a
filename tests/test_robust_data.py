"""Issue 8, bad input and hostile names: a messy image folder made by the test (every color
mode, broken and hostile files, symlink loops, markup in class names) goes through a real
run; good images are decoded right, bad ones are skipped with reasons that the run prints
and the site shows, no name injects markup, and nothing is written outside the run folder."""
from __future__ import annotations

from markupsafe import escape
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from atlas import cli
from atlas.artifacts import Run
from atlas.config import Config
from atlas.context import make_source
from atlas.data.loader import display_transform
from atlas.data.sources import DataError, FolderSource, read_image
from atlas.models.registry import get_spec
from robust_util import BLUE, HOSTILE_CLASSES, RED, bad_images, messy_folder, tree

HOSTILE_TITLE = "</title><script>alert(1)</script>"
QUICK = ["--layers", "conv1", "fc8", "--set", "topk=3", "workers=0", "batch_size=16", "seeds=1",
         "units_limit=2", "pixel_iters=1", "dgn_iters=1", "fourier_iters=1", 'priors=["pixel"]', "maps=false"]


def close(a, b, tol=14) -> bool:
    return bool(np.all(np.abs(np.asarray(a, int) - np.asarray(b, int)) <= tol))


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    """One real run over the messy folder, from an empty working folder."""
    base = tmp_path_factory.mktemp("messy")
    data, out, cwd = base / "data", base / "out", base / "cwd"
    expect = messy_folder(data)
    cwd.mkdir()
    before = tree(base)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        import contextlib
        import io
        buf_out, buf_err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
            rc = cli.main(["run", "--data", str(data), "--out", str(out), "--model", "worldnet", *QUICK,
                           f"title={HOSTILE_TITLE}"])
    finally:
        os.chdir(old)
    return {"rc": rc, "stdout": buf_out.getvalue(), "stderr": buf_err.getvalue(), "data": data,
            "out": out, "cwd": cwd, "base": base, "before": before, "expect": expect}


def test_every_color_mode_decodes_to_the_right_pixels(tmp_path):
    from robust_util import good_images
    for name, (top, bottom) in good_images(tmp_path).items():
        img = read_image(tmp_path / name)
        assert img.mode == "RGB", name
        a = np.asarray(img)
        h, w = a.shape[:2]
        assert close(a[h // 4, w // 2], top) and close(a[3 * h // 4, w // 2], bottom), \
            f"{name}: top {a[h // 4, w // 2]} bottom {a[3 * h // 4, w // 2]}, expected {top} {bottom}"
    # EXIF orientation 6: the stored 40x20 picture is shown 20 wide and 40 tall
    assert read_image(tmp_path / "exif6.jpg").size == (20, 40)


def test_bad_files_give_reasons_not_crashes(tmp_path):
    for name, word in bad_images(tmp_path).items():
        with pytest.raises(DataError) as err:
            read_image(tmp_path / name)
        assert word in str(err.value), f"{name}: {err.value}"
        assert str(tmp_path) not in str(err.value)   # reasons are short, the path is beside them


def test_file_removed_after_listing_is_reported(tmp_path):
    from robust_util import halves
    (tmp_path / "c").mkdir()
    for i in range(2):
        halves((8, 8), RED, BLUE).save(tmp_path / "c" / f"{i}.png")
    src = FolderSource(tmp_path)
    (tmp_path / "c" / "1.png").unlink()
    assert src.check(0) is None
    assert "no longer exists" in src.check(1)


def test_unreadable_file_is_skipped(tmp_path):
    from robust_util import halves
    p = tmp_path / "secret.png"
    halves((8, 8), RED, BLUE).save(p)
    p.chmod(0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reads, so there is no unreadable file to test")
        with pytest.raises(DataError, match="Permission denied"):
            read_image(p)
    finally:
        p.chmod(0o644)


def test_run_finishes_on_the_good_images(messy_run):
    assert messy_run["rc"] == 0, messy_run["stderr"][-3000:]
    ds = Run(messy_run["out"]).dataset
    descs = [ds.desc(i) for i in np.flatnonzero(ds.usable)]   # the images the top-k pass decoded
    good = [f"good/{n}" for n in messy_run["expect"]["good"]] + ["good/raw_\\xff.png"]
    hostile = [f"{c}/x.png" for c in HOSTILE_CLASSES]
    assert set(good + hostile) <= set(descs)
    assert not any(d.startswith("bad/") for d in descs if d != "bad/noperm.png")
    assert set(HOSTILE_CLASSES) <= set(ds.class_names)
    # the EXIF-rotated image reaches the model upright: red above blue, not beside it (the
    # model's view, through the source and transform the top-k pass used)
    src = make_source(Config(data=str(messy_run["data"])))
    i = [ds.desc(j) for j in range(ds.count)].index("good/exif6.jpg")
    t = display_transform(get_spec("worldnet"))(src.load(i)).permute(1, 2, 0).numpy()
    assert close(t[8, 16], RED, 30) and close(t[24, 16], BLUE, 30), (t[8, 16], t[24, 16])


def test_skipped_files_are_listed_printed_and_shown(messy_run):
    out = messy_run["out"]
    skipped = Run(out).dataset.skipped   # the listing's, then the files the top-k pass could not decode
    by_path = {s["path"]: s["reason"] for s in skipped}
    wanted = {f"bad/{n}": w for n, w in messy_run["expect"]["bad"].items()} | messy_run["expect"]["folders"]
    assert set(by_path) == set(wanted)
    for path, word in wanted.items():
        assert word in by_path[path], (path, by_path[path])
    printed = messy_run["stdout"]
    assert f"skipped {len(wanted)} unusable files" in printed
    assert "bad/ctl\\x1b[31mred.png" in printed and "\x1b" not in printed  # no terminal escapes
    for path in wanted:
        if "\x1b" not in path:
            assert f"{path}: {by_path[path]}" in printed
    index = (out / "site" / "index.html").read_text(encoding="utf-8")
    assert f"Skipped files ({len(wanted)})" in index
    for path, reason in by_path.items():
        assert str(escape(path)) in index and str(escape(reason)) in index


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.handlers, self.imgs = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs.get("src"))
        if tag == "img":
            self.imgs.append(attrs.get("src"))
        self.handlers += [k for k in attrs if k.lower().startswith("on")]


def test_hostile_names_are_escaped_on_every_page(messy_run):
    site = messy_run["out"] / "site"
    files = [p for p in site.rglob("*") if p.suffix in (".html", ".js", ".json")]
    assert len(files) > 10
    shown = False
    for p in files:
        text = p.read_text(encoding="utf-8")
        for raw in ("<script>alert", "<img src=x", HOSTILE_TITLE, 'a"b\'c'):
            assert raw not in text, f"{p.relative_to(site)} holds unescaped {raw!r}"
        if p.suffix == ".html":
            tags = _Tags()
            tags.feed(text)
            # only the site's own script files (static code and generated data files, both scanned here)
            assert all(src and src.endswith(".js") and "://" not in src and not src.startswith("/")
                       for src in tags.scripts), (p, tags.scripts)
            assert not tags.handlers, (p, tags.handlers)
            assert "x" not in tags.imgs, p
            assert str(escape(HOSTILE_TITLE)) in text, p  # the config's title, escaped on every page
            shown = shown or str(escape("<script>alert(1)")) in text
        else:
            json.loads(text) if p.suffix == ".json" else None
    assert shown, "the hostile class name is shown (escaped) somewhere"
    for name in ("日本語 ünï", "with space", str(escape('a"b\'c'))):
        assert any(name in p.read_text(encoding="utf-8") for p in files if p.suffix == ".html"), name


def test_site_file_names_are_safe(messy_run):
    site = messy_run["out"] / "site"
    for p in site.rglob("*"):
        rel = p.relative_to(site).as_posix()
        assert all(c.isascii() and (c.isalnum() or c in "._-/") for c in rel), rel


def test_nothing_is_written_outside_the_run_folder(messy_run):
    base, out = messy_run["base"], messy_run["out"]
    after = tree(base, skip=out)
    assert after.pop("out") == "dir"
    assert after == messy_run["before"]
    assert not any(messy_run["cwd"].iterdir())
    for p in out.rglob("*"):
        assert out.resolve() in p.resolve().parents or p.is_symlink(), p


def test_no_usable_image_stops_with_a_clear_error(tmp_path, capsys):
    bad_images(tmp_path / "data" / "junk")
    (tmp_path / "data" / "junk" / "noperm.png").unlink(missing_ok=True)
    rc = cli.main(["run", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), *QUICK])
    err = capsys.readouterr().err
    assert rc == 2 and "no usable image" in err and "skipped" in err, err
    assert not (tmp_path / "out" / "stages" / "topk").exists()   # found in the pass; the listing is kept


def test_folder_without_images_fails_before_the_run_folder_exists(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("no images here")
    rc = cli.main(["run", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), *QUICK])
    assert rc == 2 and "no image files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
