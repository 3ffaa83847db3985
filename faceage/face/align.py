"""Alignment into faceage's canonical frame: UTKFace's "aligned & cropped" 200 x 200 frame.

Every model in faceage is trained on UTKFace crops, so a face from any photo must be
framed the way UTKFace framed its faces. ``TEMPLATE_68`` is where dlib's 68 landmarks
fall, on average, in that frame: measured on UTKFace *training* crops with the same
detector (``train/face/measure_template.py``; the numbers and how they were obtained are in
``template_utkface68.json``). A face is aligned by the least-squares similarity transform
(Umeyama 1991: rotation, uniform scale, translation; never a reflection) from its
landmarks to the template, scaled to the crop side S.

Which landmarks are fitted is measured, not guessed: ``train/bench/face_detection.py``
re-aligns UTKFace *test* crops with their own landmarks (the ideal answer is the identity)
for each subset in ``LANDMARK_SUBSETS``. The jaw line moves with pose, face shape and
weight and the mouth with expression, while eyes and nose are rigid, so the default
``ALIGN_SUBSET`` keeps only eyes, nose and the mouth corners (figures at that constant).

Pixel convention: integer coordinates are pixel centres (as in dlib and OpenCV), so a
point p of the 200-px frame is ``(p + 0.5) * S / 200 - 0.5`` in the S-px frame.

Outside the photo the crop is filled with ``cv2.BORDER_REPLICATE``: it carries the local
colour outwards without inventing structure. Reflection would mirror real features
(an eye, an ear, half a face) into the crop, which a generator then "ages" and landmark
zones can latch onto; a constant black fill (what ~3% of UTKFace crops have) puts a hard
edge next to the face. Those pixels never reach the photo: paste-back only writes inside
the photo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceage.face.mesh import mesh_template

TEMPLATE_FILE = Path(__file__).with_name("template_utkface68.json")
TEMPLATE_SIZE = 200
"""Side of the frame ``TEMPLATE_68`` is measured in (UTKFace's crops)."""

LANDMARK_SUBSETS: dict[str, tuple[int, ...]] = {
    "all68": tuple(range(68)),
    "inner51": tuple(range(17, 68)),  # brows, nose, eyes, mouth: no jaw line
    "eyes_nose_mouth": tuple(range(27, 48)) + (48, 54),  # nose, eyes, mouth corners
    "eyes_nose": tuple(range(27, 48)),  # the rigid part of the face
}
"""Candidate landmark sets for the fit, compared by ``train/bench/face_detection.py``."""

ALIGN_SUBSET = "eyes_nose_mouth"
"""The subset ``align_face`` fits: the best re-alignment of UTKFace test crops. Mean (median)
corner displacement from the identity, 200-px frame, 2,344 test crops: eyes_nose_mouth 4.24
(3.35) px, inner51 4.63 (3.57), eyes_nose 6.11 (5.20), all68 6.39 (5.48). The residual is
mostly UTKFace's own alignment noise (it was made with another landmark detector)."""

PREFILTER_BELOW = 0.75
"""When the crop samples the photo at a scale below this, the photo is area-downscaled first
(bilinear warping alone would alias: it reads 4 pixels per output pixel whatever the scale)."""

_ROI_MARGIN = 3


def _load_template() -> np.ndarray:
    """Read ``TEMPLATE_68`` from the package's JSON file (read-only (68, 2) float64)."""
    record = json.loads(TEMPLATE_FILE.read_text(encoding="utf-8"))
    if record.get("frame_size") != TEMPLATE_SIZE:
        raise ValueError(f"{TEMPLATE_FILE}: frame_size must be {TEMPLATE_SIZE}")
    template = np.array(record["landmarks"], dtype=np.float64)
    if template.shape != (68, 2):
        raise ValueError(f"{TEMPLATE_FILE}: expected 68 x 2 landmarks, got {template.shape}")
    template.setflags(write=False)
    return template


TEMPLATE_68 = _load_template()
"""Mean dlib 68-point landmarks of UTKFace training crops, (68, 2) in the 200-px frame."""


@dataclass(frozen=True)
class AlignedFace:
    """One face brought into the canonical frame at side ``size``."""

    crop: np.ndarray
    """``(size, size, 3)`` uint8 RGB."""
    matrix: np.ndarray
    """``(2, 3)`` float64 affine map from photo pixels to crop pixels."""
    size: int
    landmarks: np.ndarray
    """``(68, 2)`` float32, the face's landmarks in crop pixels."""
    source_shape: tuple[int, int]
    """``(H, W)`` of the photo the face was aligned from (checked by paste-back)."""

    @property
    def inverse(self) -> np.ndarray:
        """``(2, 3)`` map from crop pixels back to photo pixels."""
        return invert_affine(self.matrix)


def whole_crop(crop: np.ndarray) -> AlignedFace:
    """An aligned face that is the whole of ``crop`` (a square image already in the canonical frame): identity
    transform, template landmarks."""
    size = crop.shape[0]
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    return AlignedFace(crop, identity, size, template_points(size).astype(np.float32), tuple(crop.shape[:2]))


def similarity_transform(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) mapping ``src_pts`` onto ``dst_pts``; (2, 3).

    Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", IEEE TPAMI 1991: minimises ``sum |s R src + t - dst|^2`` over rotations R
    (det +1), scales s > 0 and shifts t.
    """
    src, dst = _check_points(src_pts, "src_pts"), _check_points(dst_pts, "dst_pts")
    if src.shape != dst.shape:
        raise ValueError(f"src_pts and dst_pts must have the same shape, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-12:
        raise ValueError("src_pts are all at the same place: no transform can be estimated")
    cov = dst_c.T @ src_c / len(src)  # (2, 2)
    u, sv, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = (sv * d).sum() / src_var
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def template_points(size: int) -> np.ndarray:
    """``TEMPLATE_68`` in the frame of side ``size`` (pixel centres kept at integers)."""
    return (TEMPLATE_68 + 0.5) * (size / TEMPLATE_SIZE) - 0.5


def alignment_matrix(landmarks: np.ndarray, size: int, subset: str = ALIGN_SUBSET) -> np.ndarray:
    """The (2, 3) photo -> crop map fitting ``landmarks`` to the template at side ``size``."""
    idx = list(LANDMARK_SUBSETS[subset])
    pts = _check_points(landmarks, "landmarks")
    if len(pts) != 68:
        raise ValueError(f"landmarks must be (68, 2), got {pts.shape}")
    return similarity_transform(pts[idx], template_points(size)[idx])


def mesh_alignment_matrix(mesh: np.ndarray, size: int) -> np.ndarray:
    """The (2, 3) photo -> crop map fitting the Face Mesh's steadiest points to their template at side ``size``
    (``faceage.face.mesh``): held out on UTKFace test crops, it re-aligns closer to the identity than the
    68-point fit (``docs/foundation.md``)."""

    template, idx = mesh_template()
    pts = _check_points(mesh, "mesh")
    if len(pts) != len(template):
        raise ValueError(f"mesh must be ({len(template)}, 2), got {pts.shape}")
    return similarity_transform(pts[idx], (template[idx] + 0.5) * (size / TEMPLATE_SIZE) - 0.5)


def align_face(img: np.ndarray, landmarks: np.ndarray, size: int, mesh: np.ndarray | None = None) -> AlignedFace:
    """Warp the face with these 68 ``landmarks`` out of ``img`` into an S x S canonical crop; fitted on the
    face's ``mesh`` points when given (what the detector finds), else on the 68 landmarks."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    size = int(size)
    matrix = alignment_matrix(landmarks, size) if mesh is None else mesh_alignment_matrix(mesh, size)
    crop = warp_to_crop(img, matrix, size)
    crop_landmarks = transform_points(matrix, landmarks).astype(np.float32)
    return AlignedFace(crop, matrix, size, crop_landmarks, tuple(img.shape[:2]))


def warp_to_crop(img: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Sample the S x S crop that ``matrix`` (photo -> crop) defines, antialiased, border replicated."""
    roi, offset = _crop_footprint(img, matrix, size)
    local = matrix @ _translation(*offset)  # photo -> crop, expressed in ROI pixels
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < PREFILTER_BELOW:
        roi, local = _area_downscale(roi, local, scale)
    return cv2.warpAffine(roi, local, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def transform_points(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map to (N, 2) points; float64."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine map."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


# --------------------------------------------------------------------------- internals


def _check_points(pts, name: str) -> np.ndarray:
    """(N, 2) finite float64 with N >= 2."""
    arr = np.asarray(pts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 2:
        raise ValueError(f"{name} must be an (N, 2) array with N >= 2, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _translation(dx: float, dy: float) -> np.ndarray:
    """3 x 3 homogeneous shift by (dx, dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _crop_footprint(img: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of ``img`` the crop reads (a view) and its top-left corner in the photo.

    Clipping to the photo keeps border replication exact: where the crop leaves the
    photo, the ROI edge is the photo edge.
    """
    corners = np.array([[-1, -1], [size, -1], [-1, size], [size, size]], dtype=np.float64)
    photo_corners = transform_points(invert_affine(matrix), corners)
    h, w = img.shape[:2]
    x0, y0 = np.floor(photo_corners.min(0)).astype(int) - _ROI_MARGIN
    x1, y1 = np.ceil(photo_corners.max(0)).astype(int) + _ROI_MARGIN + 1
    # at least one pixel even when the crop lies wholly outside the photo (then: its nearest edge)
    x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
    x1, y1 = max(min(x1, w), x0 + 1), max(min(y1, h), y0 + 1)
    return img[y0:y1, x0:x1], (int(x0), int(y0))


def _area_downscale(roi: np.ndarray, local: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Area-average ``roi`` by about ``scale`` and fold the resize into ``local``."""
    h, w = roi.shape[:2]
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(roi, (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = new_w / w, new_h / h
    # resize maps x -> (x + 0.5) * fx - 0.5; undo it before applying ``local``
    to_small = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
    return small, (np.vstack([local, [0, 0, 1]]) @ np.linalg.inv(to_small))[:2]
