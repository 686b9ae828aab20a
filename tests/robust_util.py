"""Helpers for the robustness tests: messy image folders made on the spot, tree snapshots
and artifact comparison. Every bad file is generated here, none is checked in."""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)

# class folders whose names try to inject markup or escape the output folder
HOSTILE_CLASSES = ["<img src=x onerror=alert(1)>", "<script>alert(1)", 'a"b\'c', "日本語 ünï",
                   "with space", "new\nline", "..x", "L" * 200]


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims `width` x `height` pixels but holds almost no data (a bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def halves(size: tuple[int, int], top: tuple, bottom: tuple, mode: str = "RGB") -> Image.Image:
    """width x height image, top half `top`, bottom half `bottom`."""
    w, h = size
    arr = np.zeros((h, w, len(top)), np.uint8)
    arr[: h // 2], arr[h // 2:] = top, bottom
    if len(top) == 1:
        return Image.fromarray(arr[:, :, 0]).convert(mode) if mode != "L" else Image.fromarray(arr[:, :, 0])
    return Image.fromarray(arr).convert(mode) if mode not in ("RGB", "RGBA") else Image.fromarray(arr)


def exif_rotated_jpeg(path: Path) -> None:
    """Displayed (after EXIF orientation 6): 20 wide, 40 tall, red top, blue bottom. Stored
    rotated a quarter turn counter-clockwise, so ignoring EXIF gives red left, blue right."""
    shown = halves((20, 40), RED, BLUE)
    exif = Image.Exif()
    exif[0x0112] = 6
    shown.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())


def good_images(folder: Path) -> dict[str, tuple]:
    """Every color mode a folder may hold; returns name -> expected RGB of the top and
    bottom halves after decoding (transparent pixels on white)."""
    folder.mkdir(parents=True, exist_ok=True)
    expect: dict[str, tuple] = {}
    halves((32, 32), RED, BLUE).save(folder / "rgb.png")
    expect["rgb.png"] = (RED, BLUE)
    halves((32, 32), RED, GREEN).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    expect["cmyk.jpg"] = (RED, GREEN)
    halves((32, 32), (30,), (200,), "L").save(folder / "gray.png")
    expect["gray.png"] = ((30,) * 3, (200,) * 3)
    pal = Image.new("P", (32, 32), 1)
    pal.putpalette([0, 0, 0, *BLUE] + [0] * 762)
    pal.paste(0, (0, 0, 32, 16))  # index 0 is transparent
    pal.save(folder / "palette.png", transparency=0)
    expect["palette.png"] = ((255, 255, 255), BLUE)
    halves((32, 32), (*RED, 0), (*GREEN, 255), "RGBA").save(folder / "rgba.png")
    expect["rgba.png"] = ((255, 255, 255), GREEN)
    deep = np.zeros((32, 32), np.uint16)
    deep[:16], deep[16:] = 65535, 257 * 100
    Image.fromarray(deep).save(folder / "gray16.png")  # mode I;16
    expect["gray16.png"] = ((255,) * 3, (100,) * 3)
    halves((32, 32), (30, 0), (90, 255), "LA").save(folder / "la.png")
    expect["la.png"] = ((255,) * 3, (90,) * 3)
    halves((32, 32), (0,), (255,), "L").convert("1").save(folder / "bilevel.png")
    expect["bilevel.png"] = ((0,) * 3, (255,) * 3)
    flt = np.zeros((32, 32), np.float32)
    flt[:16], flt[16:] = 1.0, 0.5
    Image.fromarray(flt, "F").save(folder / "float.tif")
    expect["float.tif"] = ((255,) * 3, (128,) * 3)
    exif_rotated_jpeg(folder / "exif6.jpg")
    expect["exif6.jpg"] = (RED, BLUE)
    return expect


def bad_images(folder: Path) -> dict[str, str]:
    """Files an image folder should not contain; returns name -> a word the reason must have."""
    folder.mkdir(parents=True, exist_ok=True)
    reasons: dict[str, str] = {}
    (folder / "empty.jpg").write_bytes(b"")
    reasons["empty.jpg"] = "empty file"
    buf = folder / "full.tmpjpeg"
    halves((64, 64), RED, BLUE).save(buf, format="JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(buf.read_bytes()[: buf.stat().st_size // 2])
    buf.unlink()
    reasons["truncated.jpg"] = "truncated"
    (folder / "text.png").write_text("this is not an image\n")
    reasons["text.png"] = "not a decodable image"
    png_header_only(folder / "bomb.png", 100_000, 100_000)      # PIL's own refusal
    reasons["bomb.png"] = "decompression bomb"
    png_header_only(folder / "big.png", 10_000, 10_000)         # between PIL's warning and error
    reasons["big.png"] = "over the 64000000 pixel limit"
    png_header_only(folder / "large.png", 9_000, 9_000)         # below PIL's warning
    reasons["large.png"] = "over the 64000000 pixel limit"
    Image.new("RGB", (2000, 10)).save(folder / "sliver.png")
    reasons["sliver.png"] = "extreme aspect ratio"
    os.mkfifo(folder / "fifo.jpg")
    reasons["fifo.jpg"] = "not a regular file (a FIFO)"
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    reasons["loop_a.jpg"] = reasons["loop_b.jpg"] = "symbolic link loop"
    os.symlink("nowhere.jpg", folder / "broken.jpg")
    reasons["broken.jpg"] = "broken symbolic link"
    (folder / "ctl\x1b[31mred.png").write_text("escape sequence in the name")
    reasons["ctl\x1b[31mred.png"] = "not a decodable image"
    noperm = folder / "noperm.png"
    halves((32, 32), RED, BLUE).save(noperm)
    noperm.chmod(0)
    if os.access(noperm, os.R_OK):   # root reads it anyway: then it is a good image
        noperm.chmod(0o644)
    else:
        reasons["noperm.png"] = "Permission denied"
    return reasons


def messy_folder(root: Path) -> dict:
    """A class-folder data set with good images in every mode, bad files, symlink loops,
    hostile and non-UTF-8 names. Returns what each part should become."""
    expect = good_images(root / "good")
    reasons = bad_images(root / "bad")
    os.symlink("..", root / "bad" / "up")       # a folder link to its parent: a loop
    os.symlink(".", root / "good" / "self")     # a folder link to itself: a loop
    folder_reasons = {"bad/up/": "symbolic link loop", "good/self/": "symbolic link loop"}
    for name in HOSTILE_CLASSES:
        (root / name).mkdir()
        halves((32, 32), GREEN, BLUE).save(root / name / "x.png")
    raw = os.fsencode(root / "good") + b"/raw_\xff.png"      # a file name that is not UTF-8
    halves((32, 32), RED, BLUE).save(open(raw, "wb"), format="PNG")
    return {"good": expect, "bad": reasons, "folders": folder_reasons}


def tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """relative path -> sha256 (or 'dir'/'link') of everything under root, except `skip`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = d / name
            rel = os.fsdecode(p.relative_to(root))
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                out[rel] = "link-or-special"
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# the home page's stage table shows how long each stage took and which rank computed how
# much (the work record, last in the sorted summary): a record of the run, not results;
# its size column counts each stage's summary.json too, whose length varies with the
# timings it records (3.9 s or 10.2 s), so the size is blanked with them
TIMING = re.compile(rb"(\b\w+_s|\b\w+_seconds|ms_per_unit) -?[\d.]+|<td class=\"num\">[\d.]+ s</td>|work \{[^<]*"
                    rb"|<td class=\"num\">[\d.]+ [kMG]?B</td>")


def artifacts(run_dir: Path) -> dict[str, bytes]:
    """Every artifact of a run that must not depend on interruptions: all stage files but
    timings (summary.json, its manifest entry, the manifest's finish time), config.json, and
    the site with timestamps and stage timings blanked (its render cache, which records file
    times, left out); the run folder's own path reads RUN. Temporary
    leftovers would show up here and fail a comparison."""
    out: dict[str, bytes] = {}
    own = str(run_dir).encode()
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(run_dir).as_posix()
        if rel in (".lock", "site/.atlas-render.json") or p.name == "summary.json":
            continue
        data = p.read_bytes()
        if p.name == "manifest.json":
            man = json.loads(data)
            man.pop("finished", None)
            man.get("files", {}).pop("summary.json", None)
            data = json.dumps(man, sort_keys=True).encode()
        elif rel.startswith("site/"):
            data = TIMING.sub(b"TIME", TIMESTAMP.sub(b"T", data))
        out[rel] = data.replace(own, b"RUN")
    return out
