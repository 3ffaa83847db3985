"""Paste an edited canonical crop back into the original photo.

The edited crop is warped back with the inverse of the alignment transform and blended
through a soft face mask, so the photo keeps its own resolution, background, clothes and
hair outside the face. Guarantees:

* pixels where the (warped, feathered) mask is exactly 0 are **bit-identical** to the
  input photo: the blend runs only on the bounding box of the mask support and writes only
  where the mask is positive; everything else is a plain copy;
* faces cut by the photo border work: only the part of the crop inside the photo is used;
* the mask fades to 0 before the crop's edge, so the crop's border (replicated pixels
  where the crop left the photo) never shows as a seam.

The default mask (:func:`face_mask`) is the convex hull of the 68 landmarks plus the
forehead (the brow points raised by ``FOREHEAD`` of the brow-to-chin height: wrinkles and
frown lines live there, and the hull of the 68 points stops at the brows), dilated by
``DILATE`` and Gaussian-feathered by ``feather``, all as fractions of the crop side.
A caller can pass its own crop-frame mask instead (e.g. a painted zone map).
"""

from __future__ import annotations

import cv2
import numpy as np

from faceage.face.align import AlignedFace, transform_points

FEATHER = 0.03
"""Gaussian sigma of the mask edge, as a fraction of the crop side (0.03 -> 7.7 px at 256)."""

DILATE = 0.02
"""Growth of the landmark hull before feathering, as a fraction of the crop side."""

FOREHEAD = 0.3
"""How far above the brows the mask reaches, as a fraction of the nose-bridge-to-chin height."""

_ALPHA_FLOOR = 1.0 / 512
"""Warped mask values below this are set to 0: they cannot change a uint8 pixel."""

_BROWS = slice(17, 27)
_CHIN, _NOSE_BRIDGE = 8, 27


def face_mask(aligned: AlignedFace, feather: float = FEATHER, forehead: float = FOREHEAD) -> np.ndarray:
    """Soft face mask of ``aligned`` in crop pixels: float32 (S, S) in [0, 1], 0 at the crop edge.

    ``forehead``: how far above the brows it reaches, as a fraction of the nose-bridge-to-chin height."""
    size = aligned.size
    canvas = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(_face_outline(aligned.landmarks, forehead)).astype(np.int32))
    cv2.fillConvexPoly(canvas, hull, 255, lineType=cv2.LINE_AA)
    radius = max(1, round(DILATE * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.dilate(canvas, kernel).astype(np.float32) / 255.0
    sigma = feather * size
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_CONSTANT)
    return mask * _edge_taper(size, width=max(2.0, 2.0 * sigma))


def paste_back(
    photo: np.ndarray,
    edited_crop: np.ndarray,
    aligned: AlignedFace,
    feather: float = FEATHER,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Return a copy of ``photo`` with ``edited_crop`` blended in where the face is.

    ``edited_crop`` is an (S', S', 3) uint8 crop in ``aligned``'s canonical frame (S' may
    differ from ``aligned.size``: the frame is the same at any resolution). ``mask`` is an
    optional float (S', S') mask in [0, 1] in crop pixels; default :func:`face_mask`.
    """
    _check_inputs(photo, edited_crop, aligned)
    crop_size = edited_crop.shape[0]
    if mask is None:
        mask = face_mask(aligned, feather) if crop_size == aligned.size else _resized_mask(aligned, feather, crop_size)
    window = photo_window(_check_mask(mask, crop_size), aligned, crop_size, photo.shape[:2])
    out = photo.copy()
    if window is None:
        return out
    (x0, y0, x1, y1), local, alpha = window
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    face = cv2.warpAffine(edited_crop, local, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    _blend_into(out[y0:y1, x0:x1], face, alpha)
    return out


def photo_window(mask: np.ndarray, aligned: AlignedFace, crop_size: int, shape: tuple[int, int]):
    """Where a crop-frame ``mask`` (float32 (S', S'), S' = ``crop_size``) lands in a photo of ``shape``:
    ``(box, local, alpha)`` with ``box`` = (x0, y0, x1, y1) the photo pixels it touches, ``local`` the
    (2, 3) map from box pixels to crop pixels (use it with ``cv2.WARP_INVERSE_MAP``) and ``alpha`` the
    mask warped into the box (values too small to change a uint8 pixel set to 0); None if it misses."""
    to_crop = rescaled_frame(aligned.matrix, aligned.size, crop_size)  # photo -> crop of side S'
    box = _photo_box(mask, to_crop, shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    local = to_crop @ np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    alpha = cv2.warpAffine(mask, local, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_CONSTANT)
    alpha[alpha < _ALPHA_FLOOR] = 0.0
    return box, local, alpha


# --------------------------------------------------------------------------- internals


def _face_outline(landmarks: np.ndarray, forehead: float = FOREHEAD) -> np.ndarray:
    """The 68 landmarks plus the brows raised onto the forehead, (78, 2)."""
    up = landmarks[_NOSE_BRIDGE] - landmarks[_CHIN]  # chin -> nose bridge, face-up direction
    forehead = landmarks[_BROWS] + forehead * up
    return np.concatenate([landmarks, forehead]).astype(np.float64)


def _edge_taper(size: int, width: float) -> np.ndarray:
    """(S, S) ramp: 0 on the outermost pixels, 1 from ``width`` pixels inwards."""
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    ramp = np.clip(d / width, 0.0, 1.0)
    return np.minimum.outer(ramp, ramp)


def rescaled_frame(matrix: np.ndarray, size: int, new_size: int) -> np.ndarray:
    """Turn a photo -> crop(S) map into photo -> crop(S'), keeping pixel centres aligned."""
    if new_size == size:
        return np.asarray(matrix, np.float64)
    k = new_size / size
    return k * np.asarray(matrix, np.float64) + np.array([[0, 0, 0.5 * k - 0.5]] * 2)


def _resized_mask(aligned: AlignedFace, feather: float, size: int) -> np.ndarray:
    """``face_mask`` of ``aligned`` resampled to side ``size``."""
    return cv2.resize(face_mask(aligned, feather), (size, size), interpolation=cv2.INTER_LINEAR)


def _photo_box(mask: np.ndarray, to_crop: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Photo-pixel bounding box (x0, y0, x1, y1) of the mask support, clipped; None if empty."""
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
        return None
    corners = np.array(
        [
            [xs.min() - 1, ys.min() - 1],
            [xs.max() + 1, ys.min() - 1],
            [xs.min() - 1, ys.max() + 1],
            [xs.max() + 1, ys.max() + 1],
        ],
        np.float64,
    )
    photo_corners = transform_points(cv2.invertAffineTransform(to_crop), corners)
    h, w = shape
    x0, y0 = np.maximum(np.floor(photo_corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(photo_corners.max(0)).astype(int) + 2, [w, h])
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def _blend_into(region: np.ndarray, face: np.ndarray, alpha: np.ndarray) -> None:
    """In place: ``region = region + alpha * (face - region)`` where alpha > 0, rounded."""
    inside = alpha > 0
    a = alpha[inside][:, None]
    old = region[inside].astype(np.float32)
    new = old + a * (face[inside].astype(np.float32) - old)
    region[inside] = np.clip(np.round(new), 0, 255).astype(np.uint8)


def _check_inputs(photo: np.ndarray, edited_crop: np.ndarray, aligned: AlignedFace) -> None:
    """Shapes and dtypes of paste_back's arguments."""
    for name, arr in (("photo", photo), ("edited_crop", edited_crop)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(
                f"{name} must be an (H, W, 3) uint8 array, got "
                f"{getattr(arr, 'shape', type(arr).__name__)} {getattr(arr, 'dtype', '')}"
            )
    if edited_crop.shape[0] != edited_crop.shape[1]:
        raise ValueError(f"edited_crop must be square, got {edited_crop.shape[:2]}")
    if tuple(photo.shape[:2]) != tuple(aligned.source_shape):
        raise ValueError(
            f"photo is {photo.shape[:2]} but the face was aligned from a "
            f"{tuple(aligned.source_shape)} image: paste into the photo it came from"
        )


def _check_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A float32 (S, S) mask in [0, 1]."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (size, size):
        raise ValueError(f"mask must be ({size}, {size}) like the crop, got {mask.shape}")
    return np.clip(mask, 0.0, 1.0)
