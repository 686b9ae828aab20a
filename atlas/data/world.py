"""The embedded procedural world: shapes on textured backgrounds, with concept masks.

Every image is a pure function of (seed, index), so the world is unlimited, needs no
files, and two machines draw the same pixels. Each image also yields per-pixel maps of its
concepts: which shape covers a pixel, which named color was painted there, and which
background texture it belongs to. Those maps label units NetDissect-style.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross",
          "ring", "diamond", "hexagon", "crescent", "heart")
TEXTURES = ("plain", "stripes", "checkers", "dots", "gradient", "noise")
PALETTE = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220),
    "yellow": (240, 220, 40), "cyan": (40, 210, 220), "magenta": (210, 50, 200),
    "orange": (245, 140, 30), "purple": (120, 50, 170), "white": (245, 245, 245),
    "black": (20, 20, 20), "gray": (128, 128, 128), "brown": (130, 80, 40),
}
COLORS = tuple(PALETTE)
_RGB = np.array([PALETTE[c] for c in COLORS], dtype=np.float32)


def concept_names() -> list[str]:
    """All concepts the world can label, as 'kind:name'."""
    return ([f"shape:{s}" for s in SHAPES] + [f"color:{c}" for c in COLORS]
            + [f"texture:{t}" for t in TEXTURES])


@dataclass(frozen=True)
class Scene:
    """The random choices behind one image."""
    shape: int
    color: int
    scale: float
    angle: float
    cx: float
    cy: float
    texture: int
    bg1: int
    bg2: int
    tex_angle: float
    tex_freq: float
    tex_phase: float
    noise_grid: np.ndarray
    brightness: float


def sample_scene(rng: np.random.Generator) -> Scene:
    shape = int(rng.integers(len(SHAPES)))
    color = int(rng.integers(len(COLORS)))
    others = [c for c in range(len(COLORS)) if c != color]
    bg1, bg2 = (int(c) for c in rng.choice(others, size=2, replace=False))
    return Scene(
        shape=shape, color=color,
        scale=float(rng.uniform(0.45, 0.8)), angle=float(rng.uniform(0, 2 * np.pi)),
        cx=float(rng.uniform(-0.3, 0.3)), cy=float(rng.uniform(-0.3, 0.3)),
        texture=int(rng.integers(len(TEXTURES))), bg1=bg1, bg2=bg2,
        tex_angle=float(rng.uniform(0, np.pi)), tex_freq=float(rng.uniform(2.0, 7.0)),
        tex_phase=float(rng.uniform(0, 2 * np.pi)),
        noise_grid=rng.random((6, 6)).astype(np.float32),
        brightness=float(rng.uniform(0.85, 1.1)),
    )


def _shape_mask(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside test in the shape's own frame, coordinates in [-1, 1], y pointing up."""
    r = np.hypot(x, y)
    theta = np.arctan2(y, x)
    ax, ay = np.abs(x), np.abs(y)
    if kind == "circle":
        return r <= 0.95
    if kind == "square":
        return np.maximum(ax, ay) <= 0.75
    if kind == "triangle":
        return (y >= -0.55) & (y <= 0.95 - 1.732 * ax)
    if kind == "star":
        return r <= 0.4 + 0.6 * (0.5 + 0.5 * np.cos(5 * (theta - np.pi / 2))) ** 2
    if kind == "cross":
        return ((ax <= 0.28) & (ay <= 0.9)) | ((ay <= 0.28) & (ax <= 0.9))
    if kind == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if kind == "diamond":
        return ax + ay <= 0.95
    if kind == "hexagon":
        return (ay <= 0.8) & (0.866 * ax + 0.5 * ay <= 0.85)
    if kind == "crescent":
        return (r <= 0.95) & (np.hypot(x - 0.4, y - 0.15) > 0.72)
    if kind == "heart":
        hx, hy = x * 1.25, y * 1.25 + 0.15
        return (hx ** 2 + hy ** 2 - 1) ** 3 - hx ** 2 * hy ** 3 <= 0
    raise ValueError(f"unknown shape {kind!r}")


def _fields(s: Scene, px: np.ndarray, py: np.ndarray):
    """Evaluate the scene at points (px, py) in [0, 1] image coordinates (y down).

    Returns (rgb float32 [...,3] in 0..255, object mask, color id map, texture id map).
    """
    # background texture: t in [0, 1] mixes bg1 -> bg2
    u = px * np.cos(s.tex_angle) + py * np.sin(s.tex_angle)
    v = -px * np.sin(s.tex_angle) + py * np.cos(s.tex_angle)
    kind = TEXTURES[s.texture]
    if kind == "plain":
        t = np.zeros_like(px)
    elif kind == "stripes":
        t = (np.sin(2 * np.pi * s.tex_freq * u + s.tex_phase) > 0).astype(np.float32)
    elif kind == "checkers":
        f = s.tex_freq * 0.8
        t = ((np.floor(f * u + 10) + np.floor(f * v + 10)) % 2).astype(np.float32)
    elif kind == "dots":
        f = s.tex_freq * 1.2
        du, dv = (f * u) % 1 - 0.5, (f * v) % 1 - 0.5
        t = (np.hypot(du, dv) < 0.3).astype(np.float32)
    elif kind == "gradient":
        t = np.clip(u / 1.4 + 0.5 - 0.35, 0, 1)
    else:  # smooth value noise: bilinear upsampling of a coarse random grid
        g = s.noise_grid
        n = g.shape[0] - 1
        gx, gy = np.clip(px * n, 0, n - 1e-4), np.clip(py * n, 0, n - 1e-4)
        ix, iy = gx.astype(int), gy.astype(int)
        fx, fy = gx - ix, gy - iy
        t = (g[iy, ix] * (1 - fx) * (1 - fy) + g[iy, ix + 1] * fx * (1 - fy)
             + g[iy + 1, ix] * (1 - fx) * fy + g[iy + 1, ix + 1] * fx * fy)
        t = np.clip((t - 0.5) * 2.5 + 0.5, 0, 1)
    rgb = _RGB[s.bg1] * (1 - t[..., None]) + _RGB[s.bg2] * t[..., None]
    color_id = np.where(t < 0.5, s.bg1, s.bg2)
    # the object, in its own rotated and scaled frame (y up)
    dx, dy = (px - 0.5) * 2 - s.cx, -((py - 0.5) * 2 - s.cy)
    ca, sa = np.cos(s.angle), np.sin(s.angle)
    lx, ly = (ca * dx + sa * dy) / s.scale, (-sa * dx + ca * dy) / s.scale
    obj = _shape_mask(SHAPES[s.shape], lx, ly)
    rgb = np.where(obj[..., None], _RGB[s.color], rgb)
    color_id = np.where(obj, s.color, color_id)
    tex_id = np.where(obj, -1, s.texture)
    return rgb * s.brightness, obj, color_id, tex_id


def _grid(size: int, sub: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size * sub, dtype=np.float32) + 0.5) / (size * sub)
    return np.meshgrid(c, c)


def render(seed: int, index: int, size: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """Draw image `index` of the world `seed`.

    Returns (uint8 image HxWx3, masks, class label). masks has 'shape' (class id or -1),
    'color' (palette id) and 'texture' (texture id or -1), each HxW int8.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    scene = sample_scene(rng)
    sx, sy = _grid(size, 2)  # 2x2 supersampling for anti-aliased edges
    rgb, _, _, _ = _fields(scene, sx, sy)
    rgb = rgb.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    rgb = rgb + rng.normal(0, 4.0, rgb.shape)
    image = np.clip(rgb, 0, 255).astype(np.uint8)
    mx, my = _grid(size, 1)
    _, obj, color_id, tex_id = _fields(scene, mx, my)
    masks = {
        "shape": np.where(obj, scene.shape, -1).astype(np.int8),
        "color": color_id.astype(np.int8),
        "texture": tex_id.astype(np.int8),
    }
    return image, masks, scene.shape


def concept_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Expand the three id maps into one boolean mask per concept present in the image."""
    out: dict[str, np.ndarray] = {}
    for kind, names in (("shape", SHAPES), ("color", COLORS), ("texture", TEXTURES)):
        ids = masks[kind]
        for i in np.unique(ids):
            if i >= 0:
                out[f"{kind}:{names[int(i)]}"] = ids == i
    return out
