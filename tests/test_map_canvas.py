"""The paint canvas: the map shown over the face, strokes read back into the map."""

import numpy as np
import pytest
import torch

from faceage.amgan.maps import build_aging_map, sign_zone_masks
from faceage.errors import BadParameterError
from faceage.face.align import template_points
from ui.map_canvas import ZONE_COLOUR, canvas_picture, heat_overlay, paint_map, strokes

S = 64


@pytest.fixture(scope="module")
def amap():
    return build_aging_map(template_points(S), S, {"forehead": 0.2}, 60)


def test_canvas_shows_the_map_over_the_face(amap):
    face = np.zeros((S, S, 3), np.uint8)
    pic = canvas_picture(face, amap, scale=4)
    assert pic.shape == (4 * S, 4 * S, 3) and pic.dtype == np.uint8
    # on a black face the picture is the map's brightness, 65 %, in gray
    assert abs(int(pic[4 * 40, 4 * 32, 0]) - round(0.65 * 255 * float(amap[:, 40, 32].mean()))) <= 1
    assert (pic[..., 0] == pic[..., 2]).all()
    bright = canvas_picture(np.full((S, S, 3), 255, np.uint8), amap, scale=1)
    assert (bright.astype(int) >= canvas_picture(face, amap, scale=1)).all()
    zones = sign_zone_masks(template_points(S), S)
    outlined = canvas_picture(face, amap, scale=4, zones={"forehead": zones["forehead"]})
    orange = np.all(outlined == ZONE_COLOUR, axis=2)
    ys, _ = np.nonzero(orange)  # the forehead outline, in the top part of the face only
    assert orange.sum() > 100 and ys.max() < 4 * 30 and not orange[4 * 40 :].any()


def test_strokes_set_the_map_where_painted_only(amap):
    layer = np.zeros((4 * S, 4 * S, 4), np.uint8)
    assert paint_map(amap, [layer]) is None and paint_map(amap, []) is None  # nothing painted
    layer[4 * 10 : 4 * 20, 4 * 20 : 4 * 44] = (255, 255, 255, 255)  # white on the forehead
    painted = paint_map(amap, [layer], template_points(S))
    assert painted.shape == amap.shape
    assert torch.allclose(painted[:, 13:17, 28:36], torch.ones(2, 4, 8), atol=0.02)
    far = np.s_[:, 40:, :]
    assert torch.allclose(painted[far], amap[far], atol=1e-3)  # away from the stroke: the slider map
    gray = layer.copy()
    gray[..., :3] = 64  # a dark gray stroke lowers the score to 0.25
    assert abs(float(paint_map(amap, [gray])[0, 15, 32]) - 64 / 255) < 0.02


def test_half_transparent_and_small_layers(amap):
    colour, alpha = strokes(np.tile(np.array([255, 0, 0, 128], np.uint8), (2 * S, 2 * S, 1)), S)
    assert colour.shape == (S, S, 3) and np.allclose(alpha, 128 / 255)
    painted = paint_map(amap, [np.tile(np.array([255, 0, 0, 255], np.uint8), (S, S, 1))])
    assert torch.allclose(painted[0], torch.ones(S, S)) and torch.allclose(painted[1], torch.zeros(S, S))
    with pytest.raises(BadParameterError, match="square RGBA"):
        paint_map(amap, [np.zeros((S, S, 3), np.uint8)])


def test_heat_overlay_blends_red_by_the_weight():
    crop = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(heat_overlay(crop, np.zeros((8, 8))), crop)
    full = heat_overlay(crop, np.ones((8, 8)))
    assert np.array_equal(
        full, np.round(0.4 * crop.astype(np.float32) + 0.6 * np.array([255, 0, 0], np.float32)).astype(np.uint8)
    )
    half = heat_overlay(crop, np.full((8, 8), 0.5))
    assert (half[..., 0].astype(int) >= crop[..., 0]).all() and (half[..., 1:] <= crop[..., 1:]).all()
