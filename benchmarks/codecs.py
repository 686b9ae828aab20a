"""Bytes and encode speed of the image encoders atlas could use, on real photos.

Takes the photos of a folder (default ../shared/data/photos), makes the model's view of
each (shorter side resized to `--size`, centre crop, as torchvision's preprocessing does),
and encodes them with Pillow (JPEG, WebP, PNG), simplejpeg (JPEG) and pyvips (JPEG, WebP)
when installed, at one quality setting. Also encodes 163-px centre patches (conv5's field
in AlexNet). Prints a table and, as its last line, one JSON object:

    {"codecs": {NAME: {"kb_per_image": ..., "ms_per_image": ..., "psnr_db": ...}}, ...}

    python benchmarks/codecs.py [--data DIR] [--size 224] [--quality 80] [--limit 200]
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image


def views(folder: Path, size: int, limit: int) -> list[np.ndarray]:
    out = []
    for f in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
        with Image.open(f) as im:
            im = im.convert("RGB")
            s = size / min(im.size)
            im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.BILINEAR)
            x, y = (im.width - size) // 2, (im.height - size) // 2
            out.append(np.asarray(im.crop((x, y, x + size, y + size))))
        if len(out) >= limit:
            break
    return out


def pillow(fmt: str, **kw):
    def enc(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, fmt, **kw)
        return buf.getvalue()
    return enc


def codecs(q: int) -> dict:
    found = {"pillow-jpeg": pillow("JPEG", quality=q), "pillow-webp-m0": pillow("WEBP", quality=q, method=0),
             "pillow-webp-m4": pillow("WEBP", quality=q, method=4), "pillow-png": pillow("PNG", compress_level=1)}
    try:
        import simplejpeg
        found["simplejpeg"] = lambda a: simplejpeg.encode_jpeg(a, quality=q, colorspace="RGB", colorsubsampling="420")
    except ImportError:
        pass
    try:
        import pyvips

        def vips(suffix: str):
            def enc(a: np.ndarray) -> bytes:
                return pyvips.Image.new_from_memory(a.tobytes(), a.shape[1], a.shape[0], 3, "uchar").write_to_buffer(suffix)
            return enc
        found["pyvips-jpeg"] = vips(f".jpg[Q={q}]")
        found["pyvips-webp"] = vips(f".webp[Q={q},effort=0]")
    except Exception as exc:  # noqa: BLE001 (pyvips raises on a missing libvips at import)
        print(f"pyvips not usable: {exc}")
    return found


def psnr(a: np.ndarray, data: bytes) -> float:
    b = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float(10 * np.log10(255 ** 2 / mse)) if mse > 0 else float("inf")


def measure(images: list[np.ndarray], enc) -> dict:
    enc(images[0])  # warm up
    t = time.perf_counter()
    blobs = [enc(a) for a in images]
    s = time.perf_counter() - t
    return {"kb_per_image": round(sum(map(len, blobs)) / len(blobs) / 1000, 2),
            "ms_per_image": round(1000 * s / len(blobs), 3),
            "psnr_db": round(float(np.mean([psnr(a, b) for a, b in zip(images[:50], blobs[:50])])), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "photos"))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--quality", type=int, default=80)
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args()
    imgs = views(Path(args.data), args.size, args.limit)
    o = (args.size - 163) // 2
    patches = [np.ascontiguousarray(a[o:o + 163, o:o + 163]) for a in imgs]
    result = {"images": len(imgs), "size": args.size, "quality": args.quality, "codecs": {}, "patch163": {}}
    for name, enc in codecs(args.quality).items():
        result["codecs"][name] = measure(imgs, enc)
        result["patch163"][name] = measure(patches, enc)
        print(f"{name:16s} view {result['codecs'][name]}  patch {result['patch163'][name]}", flush=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
