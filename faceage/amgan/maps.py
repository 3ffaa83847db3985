"""AgingMapGAN's aging map, built from dlib's 68 landmarks, and its patches.

Despois, Flament, Perrot, "AgingMapGAN (AMGAN): High-Resolution Controllable Face Aging with
Spatially-Aware Conditional GANs", ECCV 2020 workshops, Sec. 3.1, 3.3, 3.4 and Fig. 2. The paper
gives no zone geometry, so the geometry below is ours; the location maps (Sec. 3.4) are defined with G
in :mod:`faceage.amgan.model`.

The map (Sec. 3.1): every clinical-sign zone is filled with that sign's normalised score in [0, 1],
the rest of the face with the normalised apparent age (:func:`faceage.data.ages.normalize_age`), the
background with 0, and the result is Gaussian-blurred so the model is not penalised for imprecise
zone edges (Sec. 3.3).

Geometry. Landmarks use iBUG indexing (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67)
in crop pixels. Every length is a multiple of ``s``, the distance between the two eye centres, and
"up"/"out"/"down" follow the face, not the image: ``u`` is the unit vector from the image-left eye
centre to the image-right eye centre, ``up`` is ``u`` turned 90 degrees towards the brows, ``down``
= -``up``, and ``out`` points away from the face's midline on each side (-``u`` on the image-left
side, +``u`` on the image-right side). So a tilted face gets tilted zones.

Sides. ``_left``/``_right`` are the *subject's* left and right, as in clinical atlases: on an
unmirrored photo the subject's right side is on the image's left (iBUG points 0-7, 17-21, 31, 36-41,
48). ``under_eye_right`` therefore lies under the eye at iBUG 36-41.

================================  ===  ===============================================================
sign                              ch   zone polygon (image-left side given; the other side mirrors it)
================================  ===  ===============================================================
``forehead``                      0    band above the brows: brow points 17-26 moved ``0.15 s`` up
                                       (lower edge) and ``0.85 s`` up (upper edge)
``glabella``                      0    inter-ocular wrinkles: brow inner ends 21, 22 moved ``0.15 s``
                                       up, then 22, nose top 27, 21 (meets the forehead band)
``under_eye_right/left``          0    lower eyelid 36, 41, 40, 39 moved ``0.05 s`` down (upper edge)
                                       and ``0.35 s`` down (lower edge)
``nasolabial_right/left``         0    quad: nose wing 31 + ``0.05 s`` out, 31 + ``0.30 s`` out,
                                       mouth corner 48 + ``0.20 s`` out + ``0.10 s`` down,
                                       48 + ``0.05 s`` down
``upper_lip``                     0    nose base 31-35 moved ``0.03 s`` down, then the top of the
                                       upper lip 53-49 moved ``0.03 s`` up
``ptosis_right/left``             0    jowl: jaw points 3-7, then mouth corner 48 + ``0.45 s`` down
``lip_corner_right/left``         1    square of half-side ``0.15 s`` centred on mouth corner 48
                                       + ``0.15 s`` out + ``0.10 s`` down
================================  ===  ===============================================================

Channels ("additional channels only where zones overlap", Sec. 3.3). The corner-of-lips square
overlaps both the bottom of the nasolabial quad and the top of the jowl polygon, so it gets its own
channel; every other zone is disjoint from the others (zones that share an edge are fine) and lives
in channel 0. *Every channel is a complete aging map*: face = age, background = 0, plus that
channel's zones. Where two zones of the same channel would touch, the later one in :data:`SIGNS`
wins. A sign left out of ``scores`` is filled with the age value (an "age-only" map is ``scores={}``).

Face region: the convex hull of the jaw (0-16) and of the brows (17-26) moved ``1.0 s`` up, i.e. the
jaw hull extended up over the forehead. Every zone is intersected with it.

Blur: Gaussian of std ``blur_sigma`` pixels (default ``0.08 s``, about 2 px on a 64-px crop and
16 px on a 512-px crop), reflect-padded (:func:`faceage.filters.gaussian_blur`).

Location maps (Sec. 3.4): X and Y are linear ramps from -1 (first pixel centre) to +1 (last pixel
centre) across the FULL image, so the centre of the image is (0, 0) and the values do not depend on
the resolution: a patch cut at the same relative place of a 256-px and a 1024-px image sees the
same values. The discriminator regresses the patch *centre* in these coordinates
(:func:`patch_location`), which equals the mean of the cropped X and Y maps.

Painted maps (Sec. 3.6, "create a target aging map manually"): :func:`map_to_image` writes a map as
an 8-bit picture whose brightness is the score (1 channel -> grayscale, 2 or 3 channels -> RGB with
channel c in colour c, blue 0 for 2 channels); :func:`image_to_map` reads it back (exact up to
1/255 quantisation); given a ``size``, it refuses a picture of another size. The editor
(:func:`faceage.amgan.editor.as_map`) instead resizes a square map of another side to its crop (the
canonical frame is the same at any resolution, so the zones stay on their landmarks) and refuses one
that is not square.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import cv2
import numpy as np
import torch

from faceage.amgan.model import location_maps
from faceage.data.ages import normalize_age
from faceage.errors import BadParameterError
from faceage.filters import gaussian_blur

__all__ = [
    "SIGNS",
    "SIGN_CHANNEL",
    "MAP_CHANNELS",
    "build_aging_map",
    "crop_patch",
    "default_blur_sigma",
    "face_region_mask",
    "image_to_map",
    "location_maps",
    "map_to_image",
    "patch_location",
    "sign_zone_masks",
]

SIGNS: Final[tuple[str, ...]] = (
    "forehead",
    "glabella",
    "under_eye_right",
    "under_eye_left",
    "nasolabial_right",
    "nasolabial_left",
    "upper_lip",
    "ptosis_right",
    "ptosis_left",
    "lip_corner_right",
    "lip_corner_left",
)
"""Clinical signs, bilateral ones split by the subject's side (see the module docstring)."""

SIGN_CHANNEL: Final[dict[str, int]] = {s: (1 if s.startswith("lip_corner") else 0) for s in SIGNS}
"""Which aging-map channel each sign is drawn in."""

MAP_CHANNELS: Final = 2
"""Channels of an aging map."""

DEFAULT_BLUR: Final = 0.08
"""Default blur std, as a fraction of the inter-ocular distance ``s``."""

_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point precision


# ----------------------------------------------------------------------------------------------
# Geometry


def _check_landmarks(landmarks) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise BadParameterError(f"landmarks must be a (68, 2) array of crop pixels, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise BadParameterError("landmarks contain NaN or infinite values")
    return pts


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 4:
        raise BadParameterError(f"size must be an int >= 4 (pixels), got {size!r}")
    return int(size)


def default_blur_sigma(landmarks) -> float:
    """The aging map's default blur std in pixels, ``DEFAULT_BLUR`` times the inter-ocular distance."""
    return DEFAULT_BLUR * _frame(_check_landmarks(landmarks))[0]


def _frame(pts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Inter-ocular distance s, unit vector u (image-left eye -> image-right eye) and up."""
    eye_a, eye_b = pts[36:42].mean(0), pts[42:48].mean(0)
    d = eye_b - eye_a
    s = float(np.hypot(*d))
    if s < 1e-6:
        raise BadParameterError("landmarks have both eyes at the same place: not a face")
    u = d / s
    up = np.array([u[1], -u[0]])  # (1, 0) -> (0, -1): towards the top of the image
    return s, u, up


def _polygons(pts: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Zone polygons (lists of (k, 2) float arrays) in crop pixels, keyed by sign."""
    s, u, up = _frame(pts)
    down = -up
    p = pts
    zones: dict[str, list[np.ndarray]] = {}
    brows = p[17:27]
    zones["forehead"] = [np.concatenate([brows + 0.15 * s * up, (brows + 0.85 * s * up)[::-1]])]
    zones["glabella"] = [np.stack([p[21] + 0.15 * s * up, p[22] + 0.15 * s * up, p[22], p[27], p[21]])]
    zones["upper_lip"] = [np.concatenate([p[31:36] + 0.03 * s * down, p[49:54][::-1] + 0.03 * s * up])]
    # (subject side, image side's outward vector, eye lower lid, nose wing, mouth corner, jaw points)
    sides = (
        ("right", -u, p[[36, 41, 40, 39]], p[31], p[48], p[3:8]),
        ("left", u, p[[45, 46, 47, 42]], p[35], p[54], p[13:8:-1]),
    )
    for name, out, lid, wing, corner, jaw in sides:
        zones[f"under_eye_{name}"] = [np.concatenate([lid + 0.05 * s * down, (lid + 0.35 * s * down)[::-1]])]
        zones[f"nasolabial_{name}"] = [
            np.stack(
                [
                    wing + 0.05 * s * out,
                    wing + 0.30 * s * out,
                    corner + 0.20 * s * out + 0.10 * s * down,
                    corner + 0.05 * s * down,
                ]
            )
        ]
        zones[f"ptosis_{name}"] = [np.concatenate([jaw, (corner + 0.45 * s * down)[None]])]
        c = corner + 0.15 * s * out + 0.10 * s * down
        h = 0.15 * s
        zones[f"lip_corner_{name}"] = [
            np.stack([c + h * (-u + up), c + h * (u + up), c + h * (u - up), c + h * (-u - up)])
        ]
    return zones


def _fill(polys: list[np.ndarray], size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    ints = [np.round(q * scale).astype(np.int32).reshape(-1, 1, 2) for q in polys]
    cv2.fillPoly(mask, ints, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask.astype(bool)


def face_region_mask(landmarks, size: int) -> np.ndarray:
    """Coarse face region, (size, size) bool: hull of the jaw and the brows moved 1.0 s up."""
    pts, size = _check_landmarks(landmarks), _check_size(size)
    s, _, up = _frame(pts)
    hull_pts = np.concatenate([pts[0:17], pts[17:27] + 1.0 * s * up])
    hull = cv2.convexHull(np.round(hull_pts * (1 << _SUBPIXEL_BITS)).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return mask.astype(bool)


def sign_zone_masks(landmarks, size: int) -> dict[str, np.ndarray]:
    """Each sign's zone as a (size, size) bool mask, inside the face region, before any blur.

    Zones of one channel are made disjoint (a pixel on a shared edge goes to the later sign of
    :data:`SIGNS`), so the masks are exactly where :func:`build_aging_map` writes each score.
    """
    pts, size = _check_landmarks(landmarks), _check_size(size)
    face = face_region_mask(pts, size)
    polys = _polygons(pts)
    masks: dict[str, np.ndarray] = {}
    taken = {c: np.zeros((size, size), bool) for c in set(SIGN_CHANNEL.values())}
    for sign in reversed(SIGNS):  # later signs win the pixels two zones of one channel share
        m = _fill(polys[sign], size) & face & ~taken[SIGN_CHANNEL[sign]]
        taken[SIGN_CHANNEL[sign]] |= m
        masks[sign] = m
    return {sign: masks[sign] for sign in SIGNS}


# ----------------------------------------------------------------------------------------------
# The aging map


def _check_scores(scores: Mapping[str, float] | None) -> dict[str, float]:
    if scores is None:
        return {}
    if not isinstance(scores, Mapping):
        raise BadParameterError(f"scores must be a dict sign -> score, got {type(scores).__name__}")
    out = {}
    for name, value in scores.items():
        if name not in SIGN_CHANNEL:
            raise BadParameterError(f"unknown clinical sign {name!r}; known signs: {', '.join(SIGNS)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise BadParameterError(f"score of {name!r} must be a number in [0, 1], got {value!r}") from None
        if not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise BadParameterError(f"score of {name!r} must be a finite number in [0, 1], got {value!r}")
        out[name] = v
    return out


def _non_negative(value, name: str, unit: str, given) -> float:
    """``value`` as a finite float >= 0, else a BadParameterError naming ``name`` (in ``unit``) and ``given``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadParameterError(f"{name} must be a number of {unit} >= 0, got {given!r}") from None
    if not math.isfinite(v) or v < 0:
        raise BadParameterError(f"{name} must be a finite number of {unit} >= 0, got {given!r}")
    return v


def build_aging_map(
    landmarks,
    size: int,
    scores: Mapping[str, float] | None,
    age: float,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """The aging map of a face, ``[MAP_CHANNELS, size, size]`` float32 in [0, 1] (Sec. 3.1, Fig. 2).

    ``landmarks``: (68, 2) iBUG points in crop pixels. ``scores``: normalised sign scores in [0, 1]
    keyed by names of :data:`SIGNS` (signs left out get the age value). ``age``: apparent age in
    years (>= 0; normalised with :func:`normalize_age`). ``blur_sigma``: blur std in pixels;
    ``None`` means ``0.08 s`` (s = inter-ocular distance), 0 means no blur.
    """
    pts, size = _check_landmarks(landmarks), _check_size(size)
    vals = _check_scores(scores)
    age_f = _non_negative(age, "age", "years", age)
    s, _, _ = _frame(pts)
    sigma = _non_negative(DEFAULT_BLUR * s if blur_sigma is None else blur_sigma, "blur_sigma", "pixels", blur_sigma)

    face = face_region_mask(pts, size)
    zones = sign_zone_masks(pts, size)
    a = float(normalize_age(age_f))
    out = np.zeros((MAP_CHANNELS, size, size), np.float32)
    out[:, face] = a
    for sign in SIGNS:
        if sign in vals:
            out[SIGN_CHANNEL[sign]][zones[sign]] = vals[sign]
    t = torch.from_numpy(out)[None]
    return gaussian_blur(t, sigma)[0].clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Location maps and patches


def crop_patch(tensor, top: int, left: int, size: int):
    """The ``size`` x ``size`` patch at (top, left) of a [..., H, W] tensor or array (a view)."""
    h, w = tensor.shape[-2:]
    if not (0 <= top and 0 <= left and size >= 1 and top + size <= h and left + size <= w):
        raise BadParameterError(f"patch top={top} left={left} size={size} does not fit in a {h}x{w} image")
    return tensor[..., top : top + size, left : left + size]


def patch_location(top: int, left: int, size: int, height: int, width: int) -> tuple[float, float]:
    """(x, y) of the patch centre in :func:`location_maps` coordinates: D_Loc's target (Eq. 3)."""

    def coord(start, n):
        return 0.0 if n == 1 else -1.0 + 2.0 * (start + (size - 1) / 2.0) / (n - 1)

    crop_patch(torch.empty(0, height, width), top, left, size)  # bounds check
    return coord(left, width), coord(top, height)


# ----------------------------------------------------------------------------------------------
# Painted maps


def map_to_image(aging_map) -> np.ndarray:
    """A map [C, H, W] in [0, 1] as uint8: grayscale (H, W) for C = 1, RGB (H, W, 3) for C = 2 or 3."""
    m = aging_map.detach().cpu().numpy() if isinstance(aging_map, torch.Tensor) else np.asarray(aging_map)
    if m.ndim != 3 or m.shape[0] not in (1, 2, 3):
        raise BadParameterError(f"an aging map is [C, H, W] with C in 1..3, got shape {m.shape}")
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise BadParameterError("an aging map must hold finite values in [0, 1]")
    q = np.round(m.astype(np.float64) * 255.0).astype(np.uint8)
    if q.shape[0] == 1:
        return q[0]
    rgb = np.zeros((q.shape[1], q.shape[2], 3), np.uint8)
    rgb[..., : q.shape[0]] = q.transpose(1, 2, 0)
    return rgb


def image_to_map(picture, channels: int = MAP_CHANNELS, size: int | None = None) -> torch.Tensor:
    """Read a painted map back: ``[channels, H, W]`` float32, brightness / 255 = score.

    ``picture``: uint8, (H, W) grayscale or (H, W, 3) RGB (an RGBA picture has its alpha dropped).
    For ``channels == 1`` an RGB picture must be gray (R = G = B). For 2 or 3 channels the picture
    must be RGB; channel c is colour c (blue is ignored for 2 channels). ``size``: if given, the
    picture must be ``size`` x ``size`` (it is never resized: that would move the zones).
    """
    if channels not in (1, 2, 3):
        raise BadParameterError(f"channels must be 1, 2 or 3, got {channels!r}")
    p = np.asarray(picture)
    if p.dtype != np.uint8:
        raise BadParameterError(f"a painted map must be an 8-bit picture (uint8), got dtype {p.dtype}")
    if p.ndim == 3 and p.shape[2] == 4:
        p = p[..., :3]
    if not (p.ndim == 2 or (p.ndim == 3 and p.shape[2] in (1, 3))):
        raise BadParameterError(f"a painted map must be (H, W) gray or (H, W, 3) RGB, got shape {p.shape}")
    if p.ndim == 3 and p.shape[2] == 1:
        p = p[..., 0]
    if size is not None and p.shape[:2] != (size, size):
        raise BadParameterError(
            f"the painted map is {p.shape[1]}x{p.shape[0]} pixels but the face crop is {size}x{size}: "
            "paint it on a picture of the crop's size"
        )
    if channels == 1:
        if p.ndim == 3:
            if not ((p[..., 0] == p[..., 1]).all() and (p[..., 1] == p[..., 2]).all()):
                raise BadParameterError("a 1-channel map must be painted in gray (R = G = B)")
            p = p[..., 0]
        m = p[None]
    else:
        if p.ndim != 3:
            raise BadParameterError(f"a {channels}-channel map must be painted in RGB (channel c = colour c)")
        m = p.transpose(2, 0, 1)[:channels]
    return torch.from_numpy(m.astype(np.float32) / 255.0)
