"""Parts of the renderer checked against brute force or a hand computation."""
from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from atlas.render.datafiles import js_assign
from atlas.render.jobs import digest, hash_bytes
from atlas.render.names import class_page, safe_name
from atlas.evidence.png import encode_png, sheet, strip
from atlas.render.serve import make_server, site_root
from atlas.render.tiles import SheetRef, sprite_css
from atlas.render.views import _map_neighbors, _overlap_neighbors, hist_path


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (64, 64, 3), (3, 200, 3), (9, 4), (6, 5, 4)])
def test_png_decodes_to_the_same_pixels(shape):
    a = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_png(a))))
    assert back.shape == a.shape and (back == a).all()


def test_png_rejects_what_it_cannot_encode():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 2), np.uint8))


def test_strip_and_sheet_layout():
    tiles = np.arange(5 * 2 * 3 * 3, dtype=np.uint8).reshape(5, 2, 3, 3)
    s = strip(tiles)
    assert s.shape == (2, 15, 3)
    for j in range(5):
        assert (s[:, 3 * j:3 * j + 3] == tiles[j]).all()
    sh = sheet(tiles, cols=2)
    assert sh.shape == (6, 6, 3)
    for j in range(5):
        r, c = divmod(j, 2)
        assert (sh[2 * r:2 * r + 2, 3 * c:3 * c + 3] == tiles[j]).all()
    assert (sh[4:6, 3:6] == 0).all()


def test_sprite_css_moves_the_tile_into_the_box():
    # a sheet of 12 x 3 tiles in a box of one tile: 12 boxes wide, 3 high, tile (5, 2) at the box's corner
    assert sprite_css(5, 2, 12, 3) == "width:1200%;height:300%;left:-500%;top:-200%"
    assert sprite_css(0, 0, 1, 1) == "width:100%;height:100%;left:0%;top:0%"


def test_sheet_ref_places_units_row_major_and_selections_by_slot():
    # 10 strips of 3 tiles, 4 a sheet, 2 across: slot 5 is sheet 1, slot 1 there: column 1, row 0
    ref = SheetRef.make("img/l/fv0-", "png", per=4, cols=2, n=3, offset=1, count=2, slots=10)
    assert ref.place(5, 1) == ("img/l/fv0-1.png", 1 * 3 + 1 + 1, 0, 6, 2)
    assert ref.place(9) == ("img/l/fv0-2.png", 4, 0, 6, 1)          # the last sheet holds 2 strips: one row
    assert ref.has(9) and not ref.has(10)
    one = SheetRef.make("img/l/fv0-", "png", per=4, cols=2, n=3, offset=1, count=2, slots=9)
    assert one.place(8) == ("img/l/fv0-2.png", 1, 0, 3, 1)          # ...or 1 strip: a sheet of 3 x 1 tiles
    # a --units selection: slot i is unit units[i]
    sel = SheetRef.make("img/l/fv0-", "png", per=4, cols=2, n=3, offset=0, count=3, slots=3, units=[7, 2, 9])
    assert sel.place(2) == ("img/l/fv0-0.png", 3, 0, 6, 2) and sel.place(9)[1:3] == (0, 1)
    assert not sel.has(0) and sel.js()["units"] == [7, 2, 9]
    assert "units" not in SheetRef.make("b", "png", 4, 2, 3, 0, 3, 3, units=[0, 1, 2]).js()   # a prefix: no list


@pytest.mark.parametrize("c,n", [(300, 5), (1700, 8), (4, 8), (2, 3), (1, 8)])
def test_map_neighbors_match_brute_force(c, n):
    xy = np.random.default_rng(c).normal(size=(c, 2))
    got = _map_neighbors(xy, n)
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    want = np.argsort(d, axis=1, kind="stable")[:, :min(n, c - 1)]
    assert got == want.tolist()


def test_overlap_neighbors_by_hand():
    ids = np.array([[0, 1, 2], [2, 1, 5], [7, 8, 9], [0, 2, 9]])
    got = _overlap_neighbors(ids, 2)
    # unit 0 shares {1,2} with 1 and {0,2} with 3: a tie of 2, lower unit first
    assert got[0] == [(1, 2), (3, 2)]
    assert got[2] == [(3, 1)]
    assert got[3] == [(0, 2), (1, 1)]


def test_hist_path_heights():
    path = hist_path(np.array([0, 5, 10]), 10, width=30, height=60)
    assert path == "M0 60V60H10V31H20V2H30V60Z"


def test_js_assign_cannot_break_out_of_a_script():
    text = js_assign("X", {"a": "</script><!-- \u2028 ü", "b": [1.5, None]})
    assert "<" not in text and "\u2028" not in text and "ü" not in text
    body = text[len("window.X = "):-2]
    assert json.loads(body) == {"a": "</script><!-- \u2028 ü", "b": [1.5, None]}


def test_safe_names_and_class_pages_stay_distinct():
    names = ["a/b", "a_b", "a b", "<x>", "", ".", ".."]
    files = {safe_name(n) for n in names}
    assert len(files) == len(names)
    assert all(f and "/" not in f and not f.startswith(".") for f in files)
    assert class_page(0, "cat") != class_page(1, "cat")


def test_digests_and_checksums():
    assert digest({"a": [1, 2]}) == digest({"a": [1, 2]}) != digest({"a": [2, 1]})
    a = np.zeros(1000, np.uint8)
    b = a.copy()
    b[500] = 1
    assert hash_bytes(a) == hash_bytes(a.copy()) != hash_bytes(b)
    assert hash_bytes(a[:10], a[10:]) == hash_bytes(a)


def test_serve_only_on_localhost(tmp_path):
    site = tmp_path / "run" / "site"
    (site / "layers").mkdir(parents=True)
    (site / "index.html").write_text("<!DOCTYPE html><title>t</title>home")
    (site / "layers" / "x.html").write_text("unit page")
    (tmp_path / "secret.txt").write_text("not served")
    assert site_root(tmp_path / "run") == site.resolve() and site_root(site) == site.resolve()
    with pytest.raises(FileNotFoundError, match="no site"):
        site_root(tmp_path / "nothing")
    server = make_server(site_root(tmp_path / "run"), port=0, quiet=True)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        base = f"http://127.0.0.1:{port}/"
        assert b"home" in urllib.request.urlopen(base + "index.html", timeout=10).read()
        assert urllib.request.urlopen(base + "layers/x.html", timeout=10).read() == b"unit page"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "../secret.txt", timeout=10)
        assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
        t.join(timeout=10)


def test_dead_units_match_a_full_scan():
    from atlas.evidence.streamstats import UnitStats
    from atlas.render.gather import dead_units
    rng = np.random.default_rng(3)
    m = rng.normal(size=(50, 7)).astype(np.float32)
    m[:, 0] = -1.0                                  # never above zero
    m[:, 1] = np.nan                                # never finite
    m[:5, 2], m[5:, 2] = np.inf, -2.0               # top-k all +inf, finite values all negative
    m[:, 3] = 0.0                                   # zero is not above zero
    k = 3
    order = np.argsort(-np.nan_to_num(m, nan=-np.inf), axis=0, kind="stable")[:k].T
    values = np.take_along_axis(m.T, order, axis=1)
    finite = np.where(np.isfinite(m), m, -np.inf)
    stats = UnitStats(7, 1)
    stats.update(m, np.zeros(50, np.int64))
    data_max = np.where(stats.count > 0, stats.max, np.nan)  # as gather reads stats/
    assert dead_units(values, data_max).tolist() == (finite.max(axis=0) <= 0).tolist()
    assert dead_units(values, data_max)[:4].all() and not dead_units(values, data_max)[4:].any()
    # without streamed statistics: from the finite top-k values (unit 2 has none among its top k)
    assert dead_units(values, None).tolist() == [True, True, True, True, False, False, False]


def test_default_workers_leave_a_small_site_in_one_process():
    import os

    from atlas.render.jobs import JOBS_PER_WORKER, default_workers
    cpus = len(os.sched_getaffinity(0))
    assert default_workers() == cpus
    assert default_workers(1755) == 1  # the quick demo: forking costs more than it saves
    assert default_workers(0) == 1
    assert default_workers(2 * JOBS_PER_WORKER) == min(cpus, 2)
    assert default_workers(10 ** 9) == cpus
