"""The paintable aging-map canvas (AgingMapGAN Sec. 3.6, "create a target aging map manually").

The canvas shows the target map built from the landmarks and the sliders over the aligned face, in
gray (brightness = the mean score of the map's channels), with the face's luminance blended in so the
user sees where the zones lie; it is shown ``scale`` times larger than the crop so a brush can be
precise.

The user paints on a transparent layer. :func:`paint_map` reads that layer back at the crop's size:
where a stroke covers a pixel (alpha), channel c of the map becomes the stroke's colour c / 255 (a
gray brush sets every channel: brightness = score); elsewhere the slider map is kept. The strokes'
coverage is blurred like the zones themselves (Sec. 3.3), so a stroke's edge is as soft as a zone's.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from faceage.amgan.maps import DEFAULT_BLUR, map_to_image
from faceage.errors import BadParameterError
from faceage.filters import LUMA, gaussian_blur

FACE_SHOWN = 0.35  # share of the face's luminance in the canvas picture
ZONE_COLOUR = (255, 140, 0)  # outlines of the sign zones (orange: never a score, which is gray)


def canvas_picture(crop: np.ndarray, aging_map: torch.Tensor, scale: int = 4, zones=None) -> np.ndarray:
    """uint8 ``(S*scale, S*scale, 3)``: the map's brightness (gray) with the face's luminance blended in.

    ``zones``: optional {sign: (S, S) bool mask} (:func:`faceage.amgan.maps.sign_zone_masks`) outlined
    in orange, so the user sees where each sign's score goes even when it equals the age around it.
    """
    picture = map_to_image(aging_map.mean(0, keepdim=True)).astype(np.float32)[..., None]  # gray: mean score
    luma = crop.astype(np.float32) @ np.array(LUMA, np.float32)
    shown = (1 - FACE_SHOWN) * picture + FACE_SHOWN * luma[..., None]
    size = crop.shape[0] * scale
    gray = cv2.resize(np.round(shown[..., 0]).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    out = np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    for mask in (zones or {}).values():
        big = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, ZONE_COLOUR, thickness=max(1, scale // 2))
    return out


def heat_overlay(crop: np.ndarray, weight: np.ndarray, share: float = 0.6) -> np.ndarray:
    """uint8 ``crop`` with red blended in by ``weight`` (float [S, S] in [0, 1]): the app's mask previews
    (CUSP's mask M, AMGAN's 1 - A)."""
    w = np.clip(np.asarray(weight, np.float32), 0, 1)[..., None] * share
    red = np.zeros_like(crop, dtype=np.float32)
    red[..., 0] = 255
    return np.round(crop.astype(np.float32) * (1 - w) + red * w).astype(np.uint8)


PREVIEW_SCALE = 2  # the app's mask previews are shown at 2x the aligned crop (256 px for 128-px crops)


def for_display(picture: np.ndarray, scale: int = PREVIEW_SCALE) -> np.ndarray:
    """uint8 ``picture`` enlarged ``scale`` times (bilinear): Gradio shows an image no larger than it is,
    so a 128-px preview would sit small in its box."""
    h, w = picture.shape[:2]
    return cv2.resize(picture, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)


def strokes(layer: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A painted RGBA layer (any square side) at ``size``: colour [size, size, 3] and alpha [size, size], in [0, 1]."""
    layer = np.asarray(layer)
    if layer.ndim != 3 or layer.shape[2] != 4 or layer.shape[0] != layer.shape[1]:
        raise BadParameterError(f"the painted layer must be a square RGBA picture, got shape {layer.shape}")
    rgba = layer.astype(np.float32) / 255.0
    alpha = rgba[..., 3]
    premultiplied = rgba[..., :3] * alpha[..., None]
    if layer.shape[0] != size:  # area averaging keeps a stroke's coverage and mean colour
        alpha = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
        premultiplied = cv2.resize(premultiplied, (size, size), interpolation=cv2.INTER_AREA)
    colour = premultiplied / np.maximum(alpha, 1e-6)[..., None]
    return np.clip(colour, 0.0, 1.0), np.clip(alpha, 0.0, 1.0)


def paint_map(aging_map: torch.Tensor, layers, landmarks=None) -> torch.Tensor | None:
    """The map with the strokes of ``layers`` (RGBA pictures) painted in, or None if nothing is painted.

    ``landmarks`` (68, 2) in crop pixels set the blur of the strokes' edges (``DEFAULT_BLUR`` times
    the inter-ocular distance, as for the zones); without them the edges are blurred by 1% of the side.
    """
    channels, size = aging_map.shape[0], aging_map.shape[-1]
    if channels > 3:
        raise BadParameterError(f"a painted map holds at most 3 channels (colours), the model uses {channels}")
    cover = torch.zeros(1, size, size)  # union of the strokes' alpha
    paint = torch.zeros(channels, size, size)  # their colour, premultiplied by alpha
    for layer in layers or []:
        if layer is None:
            continue
        colour, alpha = strokes(layer, size)
        a = torch.from_numpy(alpha)[None]
        value = torch.from_numpy(colour[..., :channels].transpose(2, 0, 1).copy())
        paint = paint * (1 - a) + value * a  # a later layer covers an earlier one
        cover = cover * (1 - a) + a
    if not cover.any():
        return None
    sigma = 0.01 * size
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)
        sigma = DEFAULT_BLUR * float(np.hypot(*(pts[42:48].mean(0) - pts[36:42].mean(0))))
    # soft stroke edges: blur coverage and premultiplied colour together (a stroke's inside keeps its colour)
    soft = gaussian_blur(torch.cat([cover, paint])[None], sigma)[0].clamp(0.0, 1.0)
    return (aging_map * (1 - soft[:1]) + soft[1:]).clamp(0.0, 1.0)
