"""Issue 15: the dataset stage only lists (no image decoded); a bad file is found when the
top-k pass first decodes it and is listed with its reason in source order, also when two
ranks share the pass; thumbnails exist exactly for the paged images; the image list and
a source's per-image names are compact."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.artifacts import Run
from atlas.artifacts import dataset as dataset_artifact
from atlas.artifacts.thumbs import paged_ids
from atlas.config import Config
from atlas.context import Context
from atlas.data import sources
from atlas.data.names import NameTable, ShownNames
from atlas.pipeline import run, run_stages
from atlas.stages import dataset
from atlas.artifacts.store import RunStore
from robust_util import BLUE, RED, halves

ROOT = Path(__file__).resolve().parents[1]
BAD = {"a/b_truncated.jpg": "truncated", "b/a_text.png": "not a decodable image", "b/c_empty.jpg": "empty file"}


def folder_with_bad_files(root: Path, per_class: int = 12) -> list[str]:
    """Three class folders of small images, three of them unusable; returns the listing order."""
    for c in ("a", "b", "c"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            halves((24, 24), RED if i % 2 else BLUE, BLUE if i % 3 else RED).save(root / c / f"{i:02d}.png")
    good = root / "a" / "00.png"
    full = root / "full.jpg"
    Image.open(good).save(full, quality=95)
    (root / "a" / "b_truncated.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    (root / "b" / "a_text.png").write_text("not an image\n")
    (root / "b" / "c_empty.jpg").write_bytes(b"")
    return sorted(str(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())


def cfg(data: Path, out: Path, **kw) -> Config:
    base = dict(data=str(data), out=str(out), model="worldnet", layers=["conv1", "fc8"], topk=3, batch_size=8,
                workers=0, priors=[], maps=False)
    return Config(**{**base, **kw})


def test_name_table_is_compact_and_round_trips():
    names = ["a/b.png", "ünï/☃.jpg", "", os.fsdecode(b"raw_\xff.png")]
    table = NameTable(names)
    assert list(table) == names and table[1] == names[1] and table[-1] == names[-1] and len(table) == 4
    assert list(table.select([3, 0])) == [names[3], names[0]] and table[1:3] == names[1:3]
    assert table.nbytes == sum(len(n.encode("utf-8", "surrogateescape")) for n in names) + 8 * 4
    assert ShownNames(table)[3] == "raw_\\xff.png"   # as JSON and pages show it
    with pytest.raises(IndexError):
        table[4]


def test_listing_decodes_nothing_and_the_pass_finds_bad_files_in_source_order(tmp_path, monkeypatch):
    order = folder_with_bad_files(tmp_path / "data")
    c = cfg(tmp_path / "data", tmp_path / "out")
    ctx = Context(c, RunStore(c.out))
    decoded = []
    real = sources.open_image
    monkeypatch.setattr(sources, "open_image", lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    run_stages(ctx, (dataset.make,))
    assert decoded == []   # listed, not decoded
    listed = dataset_artifact.read(ctx.store)   # the dataset stage alone, before the top-k pass
    assert [listed.desc(i) for i in range(listed.count)] == order and listed.usable.all()
    assert listed.labels.tolist() == [{"a": 0, "b": 1, "c": 2}[p[0]] for p in order]

    run(c)
    run_ = Run(c.out)
    assert len(decoded) >= len(order)   # the top-k pass decoded every listed file once
    unusable = run_.topk.unusable
    assert [r["path"] for r in unusable] == sorted(BAD)              # source order
    assert [r["id"] for r in unusable] == [order.index(p) for p in sorted(BAD)]
    for r in unusable:
        assert BAD[r["path"]] in r["reason"], r
    ds = run_.dataset
    assert ds.usable_count == len(order) - 3 and ds.skipped == [{"path": r["path"], "reason": r["reason"]}
                                                                for r in unusable]
    counts = ds.class_counts()
    assert counts.tolist() == [12, 12, 12, 0]   # usable images per class, then unlabelled
    stats = np.load(Path(c.out) / "stages" / "topk" / "classifier.fc8" / "stats" / "images.npy")
    assert (stats == len(order) - 3).all()      # the statistics saw the usable images only
    index = (Path(c.out) / "site" / "index.html").read_text(encoding="utf-8")
    assert "Skipped files (3)" in index and all(p in index for p in BAD)


@pytest.mark.slow
def test_two_ranks_report_the_same_bad_files(tmp_path):
    """Ranks decode different chunks; rank 0 gathers what each found, in source order, and
    the artifacts equal a one-process run's."""
    folder_with_bad_files(tmp_path / "data", per_class=20)
    outs = {}
    for nproc in (1, 2):
        out = tmp_path / f"run{nproc}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "ATLAS_DIST_BACKEND": "gloo", "PYTHONPATH": str(ROOT)}
        env.pop("ATLAS_FAULT", None)
        res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc-per-node={nproc}", "-m", "atlas", "run", "--data", str(tmp_path / "data"),
                              "--out", str(out), "--model", "worldnet", "--layers", "conv1", "fc8", "--device", "cpu",
                              "--set", "topk=3", "batch_size=2", "workers=0", "priors=[]", "maps=false"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        outs[nproc] = out
    work = json.loads((outs[2] / "stages" / "topk" / "summary.json").read_text())["work"]["chunk"]["per_rank"]
    assert min(work) > 0   # both ranks decoded part of the data
    one, two = (json.loads((o / "stages" / "topk" / "unusable.json").read_text()) for o in (outs[1], outs[2]))
    assert one == two and [r["path"] for r in one] == sorted(BAD)
    for name in ("classifier.fc8/ids.npy", "classifier.fc8/values.npy", "classifier.fc8/stats/count.npy"):
        assert (outs[1] / "stages" / "topk" / name).read_bytes() == (outs[2] / "stages" / "topk" / name).read_bytes()


def test_thumbnails_exist_exactly_for_the_paged_images(tmp_path):
    c = Config(out=str(tmp_path / "run"), world_count=160, layers=["conv5", "fc8"], topk=2, batch_size=32,
               workers=0, priors=[], maps=True, map_images=24, neighbors=3, fc_heatmaps="none")
    run(c)
    r = Run(c.out)
    maps = r.maps
    want = paged_ids([r.topk.layer(e.name).ids for e in r.topk.layers], maps.ids, maps.neighbors)
    assert 24 <= len(want) < 160   # bounded by units x k and the map sample, not by the data set
    thumbs = r.thumbs
    np.testing.assert_array_equal(thumbs.ids, want)
    stage_files = sorted(int(p.stem) for p in (thumbs.dir / "img").iterdir())
    assert stage_files == want.tolist()
    site_files = sorted(int(p.stem) for p in (Path(c.out) / "site" / "img" / "data").iterdir())
    assert site_files == want.tolist()
    pages = sorted(int(p.stem) for p in (Path(c.out) / "site" / "images").glob("*.html"))
    assert pages == want.tolist()
    # the site's thumbnail is the stage's file, linked or copied, never encoded again
    i = int(want[0])
    site = Path(c.out) / "site" / "img" / "data" / f"{i}.jpg"
    assert site.read_bytes() == thumbs.path(i).read_bytes()
    assert thumbs.meta["sheets"] == -(-len(want) // thumbs.meta["sheet_per"])
    assert thumbs.pixels(i).shape == (32, 32, 3)


def test_listing_benchmark_lists_every_file_it_wrote(tmp_path):
    # benchmarks/listing_scale.py at a small size: an ImageNet-layout folder of empty files,
    # listed by ImageNetFolder (the synsets become the classes) and walked bare, side by side
    res = subprocess.run([sys.executable, "benchmarks/listing_scale.py", "--files", "1003", "--classes", "10",
                          "--dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["files"] == 1003 and out["classes"] == 10
    assert out["listing_s"] > 0 and out["walk_s"] > 0 and out["fingerprint_s"] > 0
    assert 0 < out["bytes_per_file"] < 200          # a compact table, not an object per file
    assert not list(tmp_path.iterdir())             # its folder removed
