"""The embedded world: deterministic, varied, with concept masks that match the pixels."""
import numpy as np

from atlas.data import world


def test_deterministic_and_unlimited():
    a, ma, la = world.render(5, 123)
    b, mb, lb = world.render(5, 123)
    assert np.array_equal(a, b) and la == lb and np.array_equal(ma["color"], mb["color"])
    c, _, _ = world.render(5, 10**7)
    assert c.shape == (32, 32, 3) and not np.array_equal(a, c)


def test_all_classes_and_textures_occur():
    labels, textures = set(), set()
    for i in range(300):
        rng = np.random.default_rng([1, i])
        s = world.sample_scene(rng)
        labels.add(s.shape); textures.add(s.texture)
    assert labels == set(range(len(world.SHAPES))) and len(world.SHAPES) >= 10
    assert textures == set(range(len(world.TEXTURES)))


def test_color_mask_matches_pixels():
    img, masks, _ = world.render(3, 7, size=32)
    obj = masks["shape"] >= 0
    assert obj.sum() > 20
    color = world.COLORS[masks["color"][obj][0]]
    inside = img[obj & np.pad(obj, 1)[2:, 1:-1] & np.pad(obj, 1)[:-2, 1:-1]].astype(float).mean(axis=0)
    expected = np.array(world.PALETTE[color], float)
    assert np.abs(inside - expected).max() < 40  # brightness jitter and noise, same hue
    concepts = world.concept_masks(masks)
    assert f"color:{color}" in concepts and concepts[f"shape:{world.SHAPES[masks['shape'][obj][0]]}"].sum() == obj.sum()
